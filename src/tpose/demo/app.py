"""The Gradio web app of ``tpose demo``: photos, a camera snapshot or a short video in; the people drawn, the JSON
and drawn files to download, and the attention explorer of ``tpose explain --html`` for any person and keypoint.

It runs with no network: Gradio's analytics and version check are off (set before Gradio is imported), the
theme uses the system's fonts instead of Google Fonts, server-side rendering (Node) is off, and the explorer is
the self-contained page of ``tpose.explain`` shown in an iframe (``srcdoc``), so nothing is fetched from
elsewhere; tests/test_demo_browser.py blocks and records every request that is not to the app itself.
Gradio is imported inside the functions: it is the optional extra ``tpose[demo]``.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .engine import Analysis, DemoEngine, DemoInputError
from .options import DemoOptions

LOG = logging.getLogger(__name__)
TITLE = "tpose: see why"
INTRO = (
    "Drop photos (or a short video), or take a camera snapshot. Every person found is drawn with a number; pick "
    "one below to see, for each keypoint, the image areas its prediction depends on and the areas it affects, "
    "per layer and head of the Transformer (hover the crop, or click a keypoint)."
)
EXPLORER_HEIGHT = 1000
# the environment that keeps Gradio (and the Hugging Face client it imports) from reaching the network
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_SSR_MODE": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def _gradio() -> Any:
    """Gradio, imported offline; a clear message when the extra is not installed."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    try:
        import gradio
    except ImportError as err:
        raise ImportError('the demo needs Gradio: pip install "tpose[demo]"') from err
    return gradio


def offline_theme() -> Any:
    """Gradio's base theme with system fonts only (its defaults load Google Fonts)."""
    gr = _gradio()
    return gr.themes.Base(font=["system-ui", "-apple-system", "Segoe UI", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


def explorer_frame(page: str) -> str:
    """The explorer page in an iframe of its own (its script runs there, apart from Gradio's page)."""
    return (f'<iframe id="tpose-explorer" title="attention explorer" srcdoc="{html.escape(page, quote=True)}" '
            f'style="width:100%;height:{EXPLORER_HEIGHT}px;border:0;background:#fafafa"></iframe>')


def _message_text(messages: Sequence[str]) -> str:
    return "\n".join(f"- {html.escape(m)}" for m in messages) if messages else ""


def build_app(engine: DemoEngine | None = None) -> Any:
    """The app's ``gradio.Blocks`` (call ``launch_app`` to serve it with the offline settings)."""
    gr = _gradio()
    engine = engine or DemoEngine()
    limits = engine.options.limits

    def analyse(files: list[str] | None, snapshot: str | None, weights: str, own: str | None, whole: bool
                ) -> tuple[Any, ...]:
        paths = [str(f) for f in (files or [])] + ([str(snapshot)] if snapshot else [])
        if not paths:
            return (Analysis(), "Drop a photo or a video, or take a snapshot.", [], None,
                    gr.update(choices=[], value=None), "", [])
        try:
            result = engine.analyse(paths, weights, own, bool(whole))
        except Exception as err:  # the page says what went wrong and the app keeps serving
            LOG.exception("demo request failed")
            result = Analysis(messages=[f"error: {err}"])
        gallery = [(str(p.drawn), f"photo {i + 1}: {p.name}, {len(p.persons)} person(s)")
                   for i, p in enumerate(result.photos)]
        video = str(result.videos[0].drawn) if result.videos else None
        for v in result.videos:
            result.messages.append(f"{v.name}: {v.frames} frames at {v.fps:g} fps, "
                                   f"{len(v.track_ids)} person id(s) tracked.")
        labels = result.person_labels()
        return (result, _message_text(result.messages), gallery, video,
                gr.update(choices=labels, value=labels[0] if labels else None), "",
                [str(p) for p in result.downloads])

    def explore(result: Analysis, label: str | None, weights: str, own: str | None) -> str:
        found = result.person_at(label) if label and result is not None else None
        if found is None:
            return ""
        try:
            page = engine.explorer_page(found[0], found[1], engine.predictor(weights, own))
        except DemoInputError as err:
            return f"<p>{html.escape(str(err))}</p>"
        except Exception as err:
            LOG.exception("demo explorer failed")
            return f"<p>error: {html.escape(str(err))}</p>"
        return explorer_frame(page)

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        state = gr.State(Analysis())
        with gr.Row():
            with gr.Column():
                files = gr.File(label=f"Photos or a short video (up to {limits.max_video_seconds:g} s)",
                                file_count="multiple", type="filepath", elem_id="files")
                snapshot = gr.Image(label="Camera snapshot", sources=["webcam"], type="filepath", elem_id="camera")
            with gr.Column():
                weights = gr.Dropdown(engine.choices, value=engine.choices[0], label="Weights", elem_id="weights")
                own = gr.File(label="Your weights file (.safetensors, .pth or .onnx)", type="filepath",
                              file_types=[".safetensors", ".pth", ".pt", ".onnx"], elem_id="own-weights")
                whole = gr.Checkbox(label="No detector: the whole image is one person", elem_id="whole",
                                    value=engine.detector is None, interactive=engine.detector is not None)
                run = gr.Button("Find the people", variant="primary", elem_id="run")
        messages = gr.Markdown(_message_text([engine.detector_message] if engine.detector_message else []),
                               elem_id="messages")
        with gr.Row():
            gallery = gr.Gallery(label="People found", columns=3, height=420, elem_id="gallery")
            video = gr.Video(label="Drawn video (ids per person)", elem_id="video", autoplay=False, loop=True)
        person = gr.Dropdown([], label="Person to explain", elem_id="person")
        explorer = gr.HTML("", elem_id="explorer")
        downloads = gr.File(label="Downloads: the JSON and the drawn images or video", file_count="multiple",
                            interactive=False, elem_id="downloads")

        inputs = [files, snapshot, weights, own, whole]
        outputs = [state, messages, gallery, video, person, explorer, downloads]
        explore_args = {"fn": explore, "inputs": [state, person, weights, own], "outputs": explorer}
        run.click(analyse, inputs, outputs, api_name="analyse").then(**explore_args)  # the load test's endpoint
        for event in (files.upload, snapshot.change):
            event(analyse, inputs, outputs, api_visibility="private").then(**explore_args)
        person.input(**explore_args)
    return demo


def launch_app(options: DemoOptions | None = None, engine: DemoEngine | None = None, block: bool = True) -> Any:
    """Serve the app on ``options.host:options.port`` (loopback by default), offline; returns the Blocks."""
    options = options or (engine.options if engine is not None else DemoOptions())
    engine = engine or DemoEngine(options)
    demo = build_app(engine)
    demo.queue(default_concurrency_limit=options.concurrency, max_size=options.queue_size)
    demo.launch(
        server_name=options.host, server_port=options.port, share=options.share, theme=offline_theme(),
        ssr_mode=False, max_file_size=f"{options.limits.max_upload_mb}mb", footer_links=[], quiet=not block,
        prevent_thread_lock=not block, allowed_paths=[str(Path(engine.work_dir))],
    )
    return demo
