"""The interactive attention page: data packing, and behaviour in headless Chromium.

The browser test needs Playwright for Python (``pip install playwright``; no ``playwright install``) and
Debian's ``chromium`` at /usr/bin/chromium (or $TPOSE_CHROMIUM); it is skipped when neither can start.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tpose.codecs import HEATMAP_STRIDE
from tpose.data.keypoint_sets import COCO17
from tpose.explain.attention import (
    crop_to_token,
    heatmap_to_token,
    predicted_locations,
    run_attention,
    select_heads,
    shown_maps,
    tensor_to_image,
)
from tpose.explain.figures import MAP_ALPHA, colorize
from tpose.explain.html_page import (
    PageView,
    choose_pool,
    pool_attention,
    quantise_rows,
    render_page,
    write_attention_page,
)

from .conftest import chromium, tiny_model

H, W = 64, 48


@pytest.fixture(scope="module")
def view() -> PageView:
    model = tiny_model(num_layers=2, input_size=(H, W))
    torch.manual_seed(3)
    crop = torch.randn(1, 3, H, W)
    res = run_attention(model, crop)
    xy, scores = predicted_locations(res.heatmaps)
    attn, labels = select_heads(res.attention, "all")
    return PageView("person 0", tensor_to_image(crop), attn, res.grid_hw, labels, xy * HEATMAP_STRIDE, scores,
                    COCO17.names, COCO17.skeleton, COCO17.colors)


def test_pool_and_quantise():
    rng = np.random.default_rng(0)
    a = rng.random((2, 192, 192)).astype(np.float32)
    a /= a.sum(axis=-1, keepdims=True)  # a 16 x 12 grid's attention
    pooled, grid = pool_attention(a, (16, 12), 2)
    assert grid == (8, 6) and pooled.shape == (2, 48, 48)
    # entries are per-original-token means: rows sum to 1 / p^2
    np.testing.assert_allclose(pooled.sum(axis=-1), 0.25, atol=1e-6)
    full = a.reshape(2, 16, 12, 16, 12)
    np.testing.assert_allclose(pooled[1, 0, 7], full[1, 0:2, 0:2, 2:4, 2:4].mean(), rtol=1e-6)
    assert choose_pool((32, 24)) == 1 and choose_pool((64, 48)) == 2 and choose_pool((64, 48), 100) == 8
    q, row_max = quantise_rows(a)
    assert q.dtype == np.uint8 and row_max.shape == (2, 192)
    assert (q.max(axis=-1) == 255).all()
    back = q * row_max[..., None] / 255
    assert np.abs(back - a).max() <= row_max.max() / 510 + 1e-7


def test_page_is_self_contained(view, tmp_path):
    text = render_page([view], title="a </script> title")
    assert "</script> title" not in text  # escaped
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "fetch(" not in text and "XMLHttpRequest" not in text
    path = write_attention_page(tmp_path / "sub" / "page.html", [view])
    assert path.is_file() and path.stat().st_size < 200_000


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def _pixels(page, canvas_id: str) -> np.ndarray:
    data = page.evaluate(
        "(id) => { const c = document.getElementById(id);"
        " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }",
        canvas_id,
    )
    return np.asarray(data, dtype=np.uint8).reshape(H, W, 4)


def _expected_tile(view: PageView, values: np.ndarray, threshold: float) -> np.ndarray:
    """What the PNG figures would draw for these token values (without the star)."""
    shown = shown_maps(values.reshape(view.grid_hw), (H, W), threshold)
    colour = colorize(shown).astype(np.float32)
    return np.rint((1 - MAP_ALPHA) * view.image.astype(np.float32) + MAP_ALPHA * colour)


def test_page_in_chromium(view, browser, tmp_path):
    path = write_attention_page(tmp_path / "page.html", [view], threshold=0.00075)
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_function("window.tposeReady === true || window.tposeError !== undefined", timeout=20_000)
    assert page.evaluate("window.tposeError") is None
    box = page.locator("#image").bounding_box()

    def move(x: float, y: float) -> None:
        page.mouse.move(box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H)

    def click(x: float, y: float) -> None:
        page.mouse.click(box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H)

    # hover: the drawn maps are the hovered token's row and column, and change with the location
    move(4, 4)
    token_a = page.evaluate("window.tpose.state.hover.token")
    assert token_a == crop_to_token(np.array([[4, 4]]), (H, W), view.grid_hw)[0] == 0
    dep_a, aff_a = _pixels(page, "dep"), _pixels(page, "aff")
    move(44, 60)
    token_b = page.evaluate("window.tpose.state.hover.token")
    assert token_b == 47
    dep_b, aff_b = _pixels(page, "dep"), _pixels(page, "aff")
    assert np.abs(dep_a.astype(int) - dep_b.astype(int)).sum() > 1000
    assert np.abs(aff_a.astype(int) - aff_b.astype(int)).sum() > 1000

    # the page's values are the attention, to the quantisation step, and it draws them as the figures do
    last = view.attention.shape[0] - 1
    row = np.asarray(page.evaluate(f"window.tpose.rowValues({last}, 0, {token_b})"))
    exact = view.attention[last, 0, token_b]
    assert np.abs(row - exact).max() <= exact.max() / 510 + 1e-7
    col = np.asarray(page.evaluate(f"window.tpose.colValues({last}, 0, {token_b})"))
    np.testing.assert_allclose(col, view.attention[last, 0, :, token_b], atol=view.attention[last, 0].max() / 500)
    q, row_max = quantise_rows(view.attention)
    dequantised = q[last, 0, token_b] * row_max[last, 0, token_b] / 255
    expected = _expected_tile(view, dequantised, 0.00075)
    away = np.ones((H, W), bool)
    away[max(0, 60 - 8) :, max(0, 44 - 8) :] = False  # the star
    diff = np.abs(dep_b[..., :3].astype(np.float32) - expected)[away]
    assert diff.mean() < 0.5 and np.quantile(diff, 0.99) <= 1

    # selectors: another layer or head redraws
    page.select_option("#layer", "0")
    assert np.abs(_pixels(page, "dep").astype(int) - dep_b.astype(int)).sum() > 1000
    page.select_option("#layer", str(last))
    page.select_option("#head", "2")
    assert page.evaluate("window.tpose.state.head") == 2
    page.select_option("#head", "0")

    # clicking a keypoint pins its map: moving away no longer changes it
    kps = np.asarray(view.keypoints, dtype=np.float64)
    dist = np.linalg.norm(kps - kps[:, None], axis=2) + np.diag(np.full(len(kps), np.inf))
    k = int(np.argmax(dist.min(axis=1)))  # the most isolated keypoint, so the click is unambiguous
    click(kps[k, 0] + 0.25, kps[k, 1] + 0.25)
    assert page.evaluate("window.tpose.state.pinned") == k
    pinned = _pixels(page, "dep")
    expected_token = heatmap_to_token(np.rint(kps[k : k + 1] / HEATMAP_STRIDE), (H // 4, W // 4), view.grid_hw)[0]
    info = page.locator("#info").inner_text()
    assert f"#{expected_token} " in info and COCO17.names[k] in info
    move(2, 2)
    move(40, 30)
    np.testing.assert_array_equal(_pixels(page, "dep"), pinned)
    page.keyboard.press("Escape")
    assert page.evaluate("window.tpose.state.pinned") is None
    move(*((2, 2) if expected_token != 0 else (44, 60)))
    assert not np.array_equal(_pixels(page, "dep"), pinned)

    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    page.close()
