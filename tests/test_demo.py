"""The demo app's work without a browser: refused uploads get messages, photos and videos are drawn, the video
plays in browsers (VP8 WebM), the explorer page is the explain page of the person, and the load test serves
concurrent sessions without an error. Runs on the shipped weights with the whole image as the person (the
detector, from ../shared, only where it is present)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpose.demo import OWN_WEIGHTS, DemoEngine, DemoInputError, DemoLimits, DemoOptions
from tpose.demo.app import OFFLINE_ENVIRONMENT, explorer_frame

from .conftest import DETECTOR

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted((ROOT / "docs" / "demo").glob("*.jpg"))


def write_video(path: Path, frames: int, fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    """A short clip panning over a demo photo (people in it), as a user's phone would give."""
    image = cv2.imread(str(PHOTOS[1]))
    h, w = 240, 320
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(cv2.resize(image[:, 4 * i : 4 * i + image.shape[1] - 40], (w, h)))
    writer.release()
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> DemoEngine:
    return DemoEngine(DemoOptions(detector=None, work_dir=tmp_path_factory.mktemp("demo"),
                                  limits=DemoLimits(max_video_seconds=3.0)))


def test_photos_are_drawn_with_json(engine):
    result = engine.analyse([str(p) for p in PHOTOS])
    assert [p.name for p in result.photos] == [p.name for p in PHOTOS]
    assert all(len(p.persons) == 1 for p in result.photos)  # the whole image is one person
    assert any("no person detector" in m.lower() for m in result.messages)
    record = json.loads(result.downloads[0].read_text())
    assert [r["file"] for r in record["results"]] == [p.name for p in PHOTOS]
    assert len(record["results"][0]["persons"][0]["keypoints"]) == len(engine.predictor(engine.choices[0])
                                                                      .keypoint_set.names)
    drawn = cv2.imread(str(result.photos[0].drawn))
    original = cv2.imread(str(PHOTOS[0]))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).sum() > 10_000
    assert len(result.person_labels()) == 2 and result.person_at(result.person_labels()[1])[0].name == PHOTOS[1].name


def test_bad_uploads_get_messages_and_the_rest_goes_on(engine, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    corrupt = tmp_path / "clip.mp4"
    corrupt.write_bytes(write_video(tmp_path / "ok.mp4", 10).read_bytes()[:600])
    long_clip = write_video(tmp_path / "long.mp4", 40)  # 4 s at 10 fps, over the 3 s limit
    result = engine.analyse([str(text), str(corrupt), str(long_clip), str(PHOTOS[0])])
    joined = "\n".join(result.messages)
    assert "notes.jpg: this is neither an image nor a video" in joined
    assert "clip.mp4: " in joined
    assert "long.mp4: the video lasts 4.0 s; the limit is 3 s" in joined
    assert [p.name for p in result.photos] == [PHOTOS[0].name]  # the good photo was still served
    small = DemoEngine(DemoOptions(detector=None, work_dir=tmp_path / "w", limits=DemoLimits(max_image_pixels=1000)))
    assert "the image is too large" in "\n".join(small.analyse([str(PHOTOS[0])]).messages)
    with pytest.raises(DemoInputError, match="choose a weights file"):
        engine.predictor(OWN_WEIGHTS, None)


def test_video_is_drawn_as_webm_that_decodes(engine, tmp_path):
    clip = write_video(tmp_path / "walk.mp4", 12)
    result = engine.analyse([str(clip)])
    assert not [m for m in result.messages if "walk" in m and "lasts" in m], result.messages
    (video,) = result.videos
    assert video.drawn.suffix == ".webm" and video.frames == 12
    assert video.drawn.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    capture = cv2.VideoCapture(str(video.drawn))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").lower()
    capture.release()
    assert codec.startswith("vp8"), codec
    record = json.loads(result.downloads[0].read_text())["results"][0]
    assert len(record["frames"]) == 12 and record["fps"] == 10.0


def test_explorer_is_the_explain_page_of_the_person(engine):
    result = engine.analyse([str(PHOTOS[0])])
    photo, index = result.person_at(result.person_labels()[0])
    predictor = engine.predictor(engine.choices[0])
    page = engine.explorer_page(photo, index, predictor)
    data = json.loads(page.split('id="tpose-data">')[1].split("</script>")[0])
    (view,) = data["views"]
    assert view["layers"] >= 2 and view["grid"] == [predictor.input_size[0] // 8, predictor.input_size[1] // 8]
    assert view["heads"][0] == "mean" and len(view["heads"]) > 2  # the mean, then every head
    assert [k["name"] for k in view["keypoints"]] == list(predictor.keypoint_set.names)
    frame = explorer_frame(page)
    assert frame.startswith("<iframe") and "<script>" not in frame  # the page travels escaped in srcdoc


def test_offline_environment_is_set_before_gradio():
    assert OFFLINE_ENVIRONMENT["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert OFFLINE_ENVIRONMENT["HF_HUB_OFFLINE"] == "1"


@pytest.mark.slow
def test_concurrent_sessions_are_served_in_turn(tmp_path):
    """A smaller run of benchmarks/demo_load.py: 4 loopback sessions x 2 photos, no error, model loaded once."""
    pytest.importorskip("gradio_client", reason="the demo extra (gradio) is not installed")
    import socket

    from tpose.demo.load import LoadPlan, run_load

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    detector = str(DETECTOR) if DETECTOR.exists() else None
    report = run_load(PHOTOS, LoadPlan(sessions=4, photos_per_session=2, timeout_s=120),
                      DemoOptions(port=port, detector=detector, work_dir=tmp_path))
    assert report.errors == [] and report.requests == 8
    assert report.persons >= 8
    assert report.peak_rss_mb < report.rss_before_mb + 1500


def test_the_shipped_int8_model_is_a_choice_and_explains_with_fp32_attention(engine):
    label = next(c for c in engine.choices if "int8" in c)
    predictor = engine.predictor(label)
    assert predictor.fp32_model is not None and not hasattr(predictor.model, "global_encoder")  # ONNX Runtime runs
    result = engine.analyse([str(PHOTOS[0])], label)
    photo, index = result.person_at(result.person_labels()[0])
    page = engine.explorer_page(photo, index, predictor)
    data = json.loads(page.split('id="tpose-data">')[1].split("</script>")[0])
    assert data["views"][0]["layers"] >= 2  # every attention layer, from the PyTorch model kept beside int8
