"""What the predictor accepts as an image and as person boxes, checked once with messages that say what is
accepted: an image path, or an array (uint8 HxWx3 / HxW / HxWx4, or float in [0, 1]) in RGB order, or BGR
(OpenCV's order) when the caller says so.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data.image_io import read_image

CHANNEL_ORDERS = ("rgb", "bgr")
CORNERS_MARGIN = 0.1  # boxes running past the image by more than this share of its side look like x1,y1,x2,y2
MIN_IMAGE_SIDE = 4  # smaller images cannot show a person: no prediction, a warning
_ACCEPTED = ("an image path, or a numpy array: uint8 [H, W, 3] (also [H, W] grey and [H, W, 4] with alpha) or "
             "float in [0, 1]")


def as_rgb_image(image: str | Path | np.ndarray, channel_order: str = "rgb", where: str = "image") -> np.ndarray:
    """An RGB uint8 array [H, W, 3] from a path or an array; anything else is refused, saying what is accepted.

    Arrays are RGB unless ``channel_order="bgr"`` (OpenCV's ``cv2.imread`` order). Grey [H, W] is repeated,
    alpha is dropped, float arrays must lie in [0, 1] (scaled by 255). Other dtypes (uint16, int, bool),
    NaN or infinite values, out-of-range floats, lists and other shapes raise ``ValueError``.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if isinstance(image, (str, Path)):
        return read_image(image)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: expected {_ACCEPTED}; got a {type(image).__name__} (wrap it with np.asarray and "
                         "check its dtype)")
    arr = image
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"{where}: expected {_ACCEPTED}; got an array of shape {image.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{where}: empty image of shape {image.shape}")
    if arr.dtype == np.uint8:
        out = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{where}: the float image holds NaN or infinite values; expected values in [0, 1]")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{where}: float images must lie in [0, 1], got values in [{lo:g}, {hi:g}] (divide by "
                             "255, or pass uint8)")
        out = np.rint(arr * 255.0).astype(np.uint8)
    else:
        raise ValueError(f"{where}: expected {_ACCEPTED}; got dtype {arr.dtype} (convert it, e.g. uint16 with "
                         "(img / 257).astype(np.uint8))")
    out = out[:, :, :3] if out.shape[2] >= 3 else np.repeat(out, 3, axis=2)
    if channel_order == "bgr":
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def whole_image_box(image: np.ndarray) -> np.ndarray:
    """(0, 0, W, H): the box of an image taken as one person."""
    h, w = image.shape[:2]
    return np.array([0.0, 0.0, float(w), float(h)], dtype=np.float32)


def _warn_if_corners(b: np.ndarray, w: int, h: int, where: str) -> None:
    """Warn when boxes run far past the image but would fit read as corners: the file is likely x1,y1,x2,y2.

    "Far" is more than ``CORNERS_MARGIN`` of the image side; a detector's box of a person cut by the edge
    runs past it by a few pixels at most.
    """
    past = np.maximum(b[:, 0] + b[:, 2] - w, 0) / w + np.maximum(b[:, 1] + b[:, 3] - h, 0) / h
    fits_as_corners = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) & (b[:, 2] <= w * 1.01) & (b[:, 3] <= h * 1.01)
    suspect = np.flatnonzero((past > CORNERS_MARGIN) & fits_as_corners)
    if suspect.size:
        i = int(suspect[0])
        over = max(b[i, 0] + b[i, 2] - w, b[i, 1] + b[i, 3] - h)
        warnings.warn(f"{where}: {suspect.size} box(es) run far past the {w}x{h} image (box {i} {b[i].tolist()} by "
                      f"{over:.0f} px) but fit as x1,y1,x2,y2 corners: is the file in corner format? COCO boxes are "
                      "x,y,w,h (w = x2 - x1, h = y2 - y1)", stacklevel=4)


def check_boxes(image: np.ndarray, boxes: Any, scores: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 4] (x, y, w, h) and scores [N] for ``image``, checked.

    Malformed boxes (non-finite, zero or negative size) raise, naming the box. A box wholly outside the
    image, or an image too small to show anyone, gives no person and a warning naming it.
    """
    h, w = image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        warnings.warn(f"{where}: the image is {w}x{h} pixels, too small to show a person; no prediction",
                      stacklevel=3)
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    if boxes is None:
        b = whole_image_box(image)[None]
        s = np.ones(1, np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        if len(s) != 1:
            raise ValueError(f"{where}: {len(s)} box scores for the whole-image box")
        return b, s
    b = np.asarray(boxes, dtype=np.float32)
    if b.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{where}: boxes must be [N, 4] (x, y, w, h), got shape {b.shape}")
    bad = np.flatnonzero(~np.isfinite(b).all(axis=1) | (b[:, 2] <= 0) | (b[:, 3] <= 0))
    if bad.size:
        raise ValueError(f"{where}: box {int(bad[0])} {b[bad[0]].tolist()} needs finite x, y and positive w, h")
    s = np.ones(len(b), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
    if len(s) != len(b):
        raise ValueError(f"{where}: {len(s)} box scores for {len(b)} boxes")
    _warn_if_corners(b, w, h, where)
    outside = (b[:, 0] >= w) | (b[:, 1] >= h) | (b[:, 0] + b[:, 2] <= 0) | (b[:, 1] + b[:, 3] <= 0)
    for i in np.flatnonzero(outside):
        warnings.warn(f"{where}: box {int(i)} {b[i].tolist()} lies wholly outside the {w}x{h} image; no person for it",
                      stacklevel=3)
    return b[~outside], s[~outside]
