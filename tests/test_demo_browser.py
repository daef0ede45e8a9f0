"""The demo app in headless Chromium, offline: every request that does not go to the app itself is blocked and
recorded, and none may be attempted. Upload a demo photo, wait for the persons, pick a keypoint in the explorer
and see its attention map change; upload a short video and see the drawn WebM play in the page.

Needs the demo extra (Gradio), Playwright for Python and Debian's chromium (or $TPOSE_CHROMIUM): skipped, with
the reason, where either is missing. TPOSE_DEMO_SCREENSHOT=docs/figures/demo_app.png also saves the README's
screenshot of the app on the demo photo.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from tpose.demo import DemoEngine, DemoLimits, DemoOptions
from tpose.demo.app import launch_app

from .conftest import DETECTOR, chromium
from .test_demo import PHOTOS, write_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    pytest.importorskip("gradio", reason='the demo extra is not installed (pip install "tpose[demo]")')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = DemoOptions(port=port, detector=str(DETECTOR) if DETECTOR.exists() else None,
                          work_dir=tmp_path_factory.mktemp("demo"), limits=DemoLimits(max_video_seconds=5.0))
    demo = launch_app(options, DemoEngine(options), block=False)
    yield demo.local_url.rstrip("/")
    demo.close()


@pytest.fixture(scope="module")
def browser():
    yield from chromium("--autoplay-policy=no-user-gesture-required")


@pytest.fixture
def page(browser, app_url):
    """A page of the app where any request leaving the app is aborted and recorded (asserted empty after)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    outside: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        if url.startswith((app_url, "data:", "blob:", "about:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    page.goto(app_url)
    page.wait_for_selector("#files input[type=file]", state="attached", timeout=60_000)
    yield page
    page.close()
    assert outside == [], f"the app tried to reach the network: {outside}"


def _canvas(frame, canvas_id: str) -> np.ndarray:
    data = frame.evaluate("(id) => { const c = document.getElementById(id);"
                          " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }",
                          canvas_id)
    return np.asarray(data, dtype=np.int32)


def test_photo_persons_and_attention_explorer(page):
    page.locator("#files input[type=file]").set_input_files([str(PHOTOS[1])])
    page.wait_for_selector("#tpose-explorer", timeout=180_000)
    messages = page.locator("#messages").inner_text()
    assert "person(s) in 1 photo(s)" in messages
    assert page.locator("#gallery img").count() >= 1
    frame = page.locator("#tpose-explorer").element_handle().content_frame()
    frame.wait_for_function("window.tposeReady === true || window.tposeError !== undefined", timeout=60_000)
    assert frame.evaluate("window.tposeError") is None
    buttons = frame.locator("#kps button")
    assert buttons.count() >= 14
    before = _canvas(frame, "dep")
    buttons.nth(0).click()  # a keypoint: its dependency area is drawn
    assert frame.evaluate("window.tpose.state.pinned") == 0
    first = _canvas(frame, "dep")
    assert np.abs(first - before).sum() > 1000
    buttons.nth(buttons.count() - 1).click()  # another keypoint: another map
    assert np.abs(_canvas(frame, "dep") - first).sum() > 1000
    shot = os.environ.get("TPOSE_DEMO_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)


def test_drawn_video_plays_in_the_page(page, tmp_path):
    clip = write_video(tmp_path / "walk.mp4", 20)
    page.locator("#files input[type=file]").set_input_files([str(clip)])
    page.wait_for_selector("#video video", timeout=180_000)
    video = page.locator("#video video")
    assert ".webm" in (video.get_attribute("src") or "")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => { const v = document.querySelector('#video video');"
                           " return v && v.readyState >= 2 && v.currentTime > 0.3; }", timeout=30_000)
    assert video.evaluate("v => v.error") is None
    assert "20 frames" in page.locator("#messages").inner_text()
