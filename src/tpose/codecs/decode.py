"""Heatmaps back to keypoints: the registry of decoding methods (argmax and DARK built in), flip-test
un-mirroring, crop -> image.

Coordinates follow ``encode_gaussian``: heatmap coordinate (x, y) is the centre of column x, row y.
Everything is vectorised over all N*K heatmaps at once, because evaluation decodes tens of thousands
of them per pass and a Python loop per heatmap would cost more than the model on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import cv2
import numpy as np
import torch

from .affine import get_affine_transform

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# window of the log-heatmap the Taylor step reads: the argmax and two pixels either side
_TAYLOR_RADIUS = 2
# DARK floors the blurred heatmap at this value before the log
_LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class DecodeOptions:
    """Settings a decoding method may read (each ignores those it has no use for)."""

    blur_kernel: int = 11  # DARK's Gaussian, in heatmap pixels (odd)


class Decoder(Protocol):
    """A decoding method: heatmaps [N, K, H, W] (float32) -> locations [N, K, 2] (x, y in heatmap pixels) and
    scores [N, K]."""

    def __call__(self, heatmaps: np.ndarray, options: DecodeOptions) -> tuple[np.ndarray, np.ndarray]: ...


DEFAULT_DECODER = "dark"
_DECODERS: dict[str, Decoder] = {}
D = TypeVar("D", bound=Decoder)


def register_decoder(name: str, *, replace: bool = False) -> Callable[[D], D]:
    """Decorator registering a decoding method under ``name``: prediction, evaluation, the training config and
    the CLI's ``--decode`` then accept that name. ``replace=True`` overrides an existing registration."""

    def add(decoder: D) -> D:
        if name in _DECODERS and not replace:
            raise ValueError(f"a decoding method named {name!r} is already registered (pass replace=True to override)")
        _DECODERS[name] = decoder
        return decoder

    return add


def list_decoders() -> list[str]:
    """The registered decoding methods, sorted."""
    return sorted(_DECODERS)


def get_decoder(name: str) -> Decoder:
    """The decoding method ``name``; ValueError naming the registered ones otherwise."""
    if name not in _DECODERS:
        raise ValueError(f"unknown decoding method {name!r}: use one of {list_decoders()} (see tpose.register_decoder)")
    return _DECODERS[name]


def decode_heatmaps(
    heatmaps: np.ndarray | torch.Tensor,
    method: str = DEFAULT_DECODER,
    blur_kernel: int = DecodeOptions.blur_kernel,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint locations ``[N, K, 2]`` (x, y in heatmap pixels) and scores ``[N, K]`` by the registered
    decoding ``method`` (built in: ``"dark"`` and ``"argmax"``, below)."""
    decoder = get_decoder(method)
    hm = _as_float_array(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"decode_heatmaps expects heatmaps of shape [N, K, H, W], got {hm.shape}")
    n, k, h, w = hm.shape
    if h * w == 0:
        raise ValueError("decode_heatmaps got empty heatmaps (H or W is 0)")
    coords, scores = decoder(hm, DecodeOptions(blur_kernel=blur_kernel))
    coords, scores = np.asarray(coords), np.asarray(scores)
    if coords.shape != (n, k, 2) or scores.shape != (n, k):
        raise ValueError(f"decoding method {method!r} returned shapes {coords.shape} and {scores.shape}, "
                         f"expected {(n, k, 2)} and {(n, k)}")
    return coords.astype(np.float32), scores.astype(np.float32)


def _peaks(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every heatmap as [N*K, H, W], with its argmax column, row and value."""
    n, k, h, w = hm.shape
    maps = hm.reshape(n * k, h, w)
    flat = maps.reshape(n * k, h * w)
    idx = flat.argmax(axis=1)
    scores = np.take_along_axis(flat, idx[:, None], axis=1)[:, 0]
    return maps, idx % w, idx // w, scores


@register_decoder("argmax")
def decode_argmax(heatmaps: np.ndarray, options: DecodeOptions) -> tuple[np.ndarray, np.ndarray]:
    """The classic decoder: the maximum moved a quarter pixel towards its higher neighbour on each axis."""
    n, k = heatmaps.shape[:2]
    maps, px, py, scores = _peaks(heatmaps)
    return _quarter_offset(maps, px, py).reshape(n, k, 2), scores.reshape(n, k)


@register_decoder("dark")
def decode_dark(heatmaps: np.ndarray, options: DecodeOptions) -> tuple[np.ndarray, np.ndarray]:
    """DARK (Zhang et al., CVPR 2020): sub-pixel peaks from the log of the blurred heatmap.

    Each heatmap is blurred with a Gaussian of ``options.blur_kernel`` (keeping its maximum), the log taken
    and the maximum moved by one Newton step of the second-order Taylor expansion there, which recovers a
    Gaussian's centre to a small fraction of a pixel. Peaks within two pixels of the border, non-positive
    heatmaps and flat (singular) neighbourhoods keep the integer argmax. Unlike the released code, a heatmap
    whose maximum is not positive keeps its argmax location instead of being moved to (0, 0); its score
    says it is unreliable.
    """
    n, k = heatmaps.shape[:2]
    maps, px, py, scores = _peaks(heatmaps)
    return _dark_refine(maps, px, py, scores, options.blur_kernel).reshape(n, k, 2), scores.reshape(n, k)


def _as_float_array(heatmaps: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(heatmaps, torch.Tensor):
        return heatmaps.detach().to("cpu", torch.float32).numpy()
    return np.asarray(heatmaps, dtype=np.float32)


def _quarter_offset(maps: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Argmax plus 0.25 px towards the higher neighbour, per axis, where both neighbours exist."""
    m, h, w = maps.shape
    rows = np.arange(m)
    coords = np.stack([px, py], axis=1).astype(np.float64)
    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    right = maps[rows, py, np.minimum(px + 1, w - 1)]
    left = maps[rows, py, np.maximum(px - 1, 0)]
    below = maps[rows, np.minimum(py + 1, h - 1), px]
    above = maps[rows, np.maximum(py - 1, 0), px]
    coords[:, 0] += np.where(inner_x, 0.25 * np.sign(right - left), 0.0)
    coords[:, 1] += np.where(inner_y, 0.25 * np.sign(below - above), 0.0)
    return coords


def _dark_refine(
    maps: np.ndarray, px: np.ndarray, py: np.ndarray, max_values: np.ndarray, blur_kernel: int
) -> np.ndarray:
    """DARK's Taylor step, computed from only the window of each heatmap that the step reads.

    The reference blurs whole heatmaps; the 5x5 blurred values around the maximum depend only on a
    (4 + kernel)-square window of the input (zero outside the heatmap), so blurring that window gives
    the same numbers for a fraction of the work. Rescaling the blurred map to keep its maximum adds a
    constant to the log and so cancels in the derivatives; it matters only for where the 1e-10 floor
    bites, for which the window's own maximum stands in for the map's.
    """
    if blur_kernel < 1 or blur_kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be a positive odd number, got {blur_kernel}")
    m, h, w = maps.shape
    coords = np.stack([px, py], axis=1).astype(np.float64)
    r = _TAYLOR_RADIUS
    ok = (px >= r) & (px <= w - 1 - r) & (py >= r) & (py <= h - 1 - r) & (max_values > 0)
    sel = np.flatnonzero(ok)
    if sel.size == 0:
        return coords
    half = blur_kernel // 2
    pad = r + half
    offsets = np.arange(-pad, pad + 1)
    rows = py[sel, None] + offsets  # [S, P]
    cols = px[sel, None] + offsets
    row_in = (rows >= 0) & (rows < h)
    col_in = (cols >= 0) & (cols < w)
    window = maps[sel[:, None, None], np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]]
    window = window.astype(np.float64) * (row_in[:, :, None] & col_in[:, None, :])  # zero outside the map
    kernel = cv2.getGaussianKernel(blur_kernel, 0).ravel().astype(np.float64)  # what cv2.GaussianBlur uses
    blurred = np.lib.stride_tricks.sliding_window_view(window, blur_kernel, axis=1) @ kernel  # [S, 5, P]
    blurred = np.lib.stride_tricks.sliding_window_view(blurred, blur_kernel, axis=2) @ kernel  # [S, 5, 5]
    peak = blurred.reshape(sel.size, -1).max(axis=1)
    # the true gain is >= 1 (the blurred maximum cannot exceed the heatmap's), so the floor can only bite
    # where a window value is <= the floor; only there does the whole map's blurred maximum matter
    floored = np.flatnonzero((blurred <= _LOG_FLOOR).any(axis=(1, 2)))
    if floored.size:
        peak[floored] = _full_blur_peaks(maps[sel[floored]], blur_kernel)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(peak != 0, max_values[sel] / peak, 1.0)
    logs = np.log(np.maximum(blurred * gain[:, None, None], _LOG_FLOOR))
    c = r  # centre index of the 5x5 window
    dx = 0.5 * (logs[:, c, c + 1] - logs[:, c, c - 1])
    dy = 0.5 * (logs[:, c + 1, c] - logs[:, c - 1, c])
    dxx = 0.25 * (logs[:, c, c + 2] - 2 * logs[:, c, c] + logs[:, c, c - 2])
    dyy = 0.25 * (logs[:, c + 2, c] - 2 * logs[:, c, c] + logs[:, c - 2, c])
    dxy = 0.25 * (logs[:, c + 1, c + 1] - logs[:, c - 1, c + 1] - logs[:, c + 1, c - 1] + logs[:, c - 1, c - 1])
    det = dxx * dyy - dxy * dxy
    # step only at a true maximum of the blurred log-map (negative-definite Hessian); elsewhere (flat or
    # saddle-shaped maps of an untrained or confused model) the Taylor step can jump thousands of pixels
    solvable = (det > 0) & (dxx < 0)
    safe_det = np.where(solvable, det, 1.0)
    # offset = -H^-1 * gradient, with H = [[dxx, dxy], [dxy, dyy]]
    off_x = -(dyy * dx - dxy * dy) / safe_det
    off_y = -(dxx * dy - dxy * dx) / safe_det
    # the argmax is within half a pixel of the true peak: a longer step is numerical noise
    solvable &= (np.abs(off_x) <= 1.0) & (np.abs(off_y) <= 1.0)
    coords[sel, 0] += np.where(solvable, off_x, 0.0)
    coords[sel, 1] += np.where(solvable, off_y, 0.0)
    return coords


def _full_blur_peaks(maps: np.ndarray, blur_kernel: int) -> np.ndarray:
    """Maximum of each heatmap after the zero-bordered Gaussian blur (the reference's blur)."""
    half = blur_kernel // 2
    peaks = np.empty(maps.shape[0], dtype=np.float64)
    for i, hm in enumerate(maps):
        padded = cv2.copyMakeBorder(hm.astype(np.float64), half, half, half, half, cv2.BORDER_CONSTANT, value=0)
        blurred = cv2.GaussianBlur(padded, (blur_kernel, blur_kernel), 0)
        peaks[i] = blurred[half : half + hm.shape[0], half : half + hm.shape[1]].max()
    return peaks


def flip_heatmaps_back(heatmaps: ArrayT, flip_index: list[int] | np.ndarray) -> ArrayT:
    """Heatmaps of a mirrored crop, mirrored back along W with left/right channels swapped.

    Channels are axis -3 (``[K, H, W]`` or ``[N, K, H, W]``). No one-pixel shift is applied
    (the convention of the released TransPose evaluation). Applying it twice is the identity.
    """
    index = list(flip_index)
    if heatmaps.shape[-3] != len(index):
        raise ValueError(f"flip_index has {len(index)} entries for heatmaps with {heatmaps.shape[-3]} channels")
    if isinstance(heatmaps, torch.Tensor):
        return heatmaps[..., index, :, :].flip(-1)
    return np.ascontiguousarray(np.asarray(heatmaps)[..., index, :, ::-1])


def heatmap_to_image(
    coords: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    heatmap_hw: tuple[int, int],
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Heatmap coordinates ``[N, K, 2]`` mapped back into the original images (``[N, K, 2]``, float32).

    Inverse of the crop's affine transform with the heatmap as its output (``heatmap_hw`` = (H, W)), per
    person ``center`` ``[N, 2]``, ``scale`` ``[N, 2]`` (units of 200 px) and optional ``rotation`` [N] in degrees.
    """
    hw = (int(heatmap_hw[0]), int(heatmap_hw[1]))
    pts = np.asarray(coords, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"heatmap_to_image expects coords of shape [N, K, 2], got {pts.shape}")
    n = pts.shape[0]
    centers = np.asarray(center, dtype=np.float32).reshape(n, 2)
    scales = np.asarray(scale, dtype=np.float32).reshape(n, 2)
    rots = np.zeros(n, dtype=np.float64) if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(n)
    mats = np.empty((n, 2, 3), dtype=np.float64)
    for i in range(n):
        mats[i] = get_affine_transform(centers[i], scales[i], float(rots[i]), hw, inv=True)
    out = np.einsum("nkj,nij->nki", pts, mats[:, :, :2]) + mats[:, None, :, 2]
    return out.astype(np.float32)
