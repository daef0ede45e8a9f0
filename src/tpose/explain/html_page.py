"""One self-contained HTML page to explore a crop's attention: hover for a location's dependency and affected areas.

Everything the page needs travels inside it (no server, no network): the crop as a PNG data URI, and per
layer and head the attention matrix quantised to uint8 per row (``q = round(255 * a / max(row))``, the row
maxima kept as float32 so any entry is ``q * rowmax / 255``), zlib-deflated and base64-encoded, inflated in
the browser with the standard ``DecompressionStream``. The page draws maps exactly as the PNG figures do:
bilinear upsampling to the crop (half-pixel centres, as OpenCV), values at or below the threshold zeroed,
nipy_spectral from 0 to the map's maximum blended at 0.79 over the crop, a white star at the location.

Large token grids are pooled before embedding so the page stays small: with ``pool`` p, rows average the
p x p query tokens of a cell and entries average the p x p key tokens, so a value still reads as "attention
per original token" and the threshold keeps its meaning (H models at 256x192, 3072 tokens, use p = 2).
"""

from __future__ import annotations

import base64
import html
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..utils.files import atomic_write
from .attention import DEFAULT_THRESHOLD
from .figures import MAP_ALPHA, colormap_lut

MAX_PAGE_TOKENS = 1024


@dataclass
class PageView:
    """One person's crop, prediction and attention for the page."""

    label: str
    image: np.ndarray  # crop, RGB uint8 [H, W, 3]
    attention: np.ndarray  # [layers, heads, L, L]
    grid_hw: tuple[int, int]
    head_labels: Sequence[str]
    keypoints: np.ndarray  # [K, 2] crop pixels
    scores: np.ndarray  # [K]
    names: Sequence[str]
    skeleton: Sequence[tuple[int, int]] = ()
    colors: Sequence[tuple[int, int, int]] = field(default_factory=tuple)


def choose_pool(grid_hw: tuple[int, int], max_tokens: int = MAX_PAGE_TOKENS) -> int:
    """The smallest pooling factor (1, 2, 4, 8) dividing the grid that leaves at most ``max_tokens`` tokens."""
    gh, gw = grid_hw
    for p in (1, 2, 4, 8):
        if gh % p == 0 and gw % p == 0 and (gh // p) * (gw // p) <= max_tokens:
            return p
    return 1


def pool_attention(attention: np.ndarray, grid_hw: tuple[int, int], pool: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Average p x p query tokens and p x p key tokens: [..., L, L] -> [..., L / p^2, L / p^2]."""
    if pool == 1:
        return attention, tuple(grid_hw)
    gh, gw = grid_hw
    if gh % pool or gw % pool:
        raise ValueError(f"pooling {pool} does not divide the token grid {gh}x{gw}")
    h, w = gh // pool, gw // pool
    lead = attention.shape[:-2]
    a = attention.reshape(*lead, h, pool, w, pool, h, pool, w, pool)
    n = len(lead)
    a = a.mean(axis=(n + 1, n + 3, n + 5, n + 7))
    return a.reshape(*lead, h * w, h * w), (h, w)


def quantise_rows(attention: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 entries scaled by each row's maximum, and those maxima (float32)."""
    a = np.asarray(attention, dtype=np.float32)
    row_max = a.max(axis=-1)
    safe = np.where(row_max > 0, row_max, 1.0)[..., None]
    q = np.clip(np.rint(a / safe * 255.0), 0, 255).astype(np.uint8)
    return q, row_max.astype(np.float32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _png_data_uri(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode the crop of shape {image.shape} as PNG")
    return "data:image/png;base64," + _b64(buf.tobytes())


def view_payload(view: PageView, max_tokens: int = MAX_PAGE_TOKENS, compress: bool = True) -> dict:
    """The JSON-ready data of one view (attention pooled, quantised, deflated, base64-encoded)."""
    h, w = view.image.shape[:2]
    pool = choose_pool(view.grid_hw, max_tokens)
    attn, grid = pool_attention(view.attention, view.grid_hw, pool)
    q, row_max = quantise_rows(attn)
    raw = q.tobytes()
    gh, gw = grid
    kps = []
    for k, (x, y) in enumerate(np.asarray(view.keypoints, dtype=np.float64).reshape(-1, 2)):
        col = int(np.clip(np.floor(x * gw / w), 0, gw - 1))
        row = int(np.clip(np.floor(y * gh / h), 0, gh - 1))
        kps.append({
            "name": str(view.names[k]) if k < len(view.names) else str(k),
            "x": round(float(x), 2),
            "y": round(float(y), 2),
            "score": round(float(view.scores[k]), 4) if k < len(view.scores) else None,
            "token": row * gw + col,
            "color": [int(c) for c in view.colors[k]] if k < len(view.colors) else [0, 200, 80],
        })
    return {
        "label": view.label,
        "image": _png_data_uri(view.image),
        "size": [h, w],
        "grid": [gh, gw],
        "pool": pool,
        "layers": int(attn.shape[0]),
        "heads": [str(s) for s in view.head_labels],
        "compressed": compress,
        "q": _b64(zlib.compress(raw, 6) if compress else raw),
        "rowmax": _b64(row_max.astype("<f4").tobytes()),
        "keypoints": kps,
        "skeleton": [[int(a), int(b)] for a, b in view.skeleton],
    }


def render_page(
    views: Sequence[PageView],
    threshold: float = DEFAULT_THRESHOLD,
    title: str = "TransPose attention",
    max_tokens: int = MAX_PAGE_TOKENS,
    compress: bool = True,
) -> str:
    """The page's HTML text."""
    if not views:
        raise ValueError("the attention page needs at least one view")
    data = {
        "threshold": float(threshold or 0.0),
        "alpha": MAP_ALPHA,
        "lut": _b64(colormap_lut().tobytes()),
        "views": [view_payload(v, max_tokens, compress) for v in views],
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    template, script = _page_files()
    return template.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload).replace("__JS__", script)


@lru_cache(maxsize=1)
def _page_files() -> tuple[str, str]:
    """The page's HTML template and script, package data beside this module (``page/``)."""
    folder = resources.files("tpose.explain").joinpath("page")
    return (folder.joinpath("attention.html").read_text(encoding="utf-8"),
            folder.joinpath("attention.js").read_text(encoding="utf-8"))


def write_attention_page(
    path: str | Path,
    views: Sequence[PageView],
    threshold: float = DEFAULT_THRESHOLD,
    title: str = "TransPose attention",
    max_tokens: int = MAX_PAGE_TOKENS,
    compress: bool = True,
) -> Path:
    """Write the page to ``path`` (folders created) and return the path."""
    text = render_page(views, threshold, title, max_tokens, compress)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
