"""Box -> (centre, scale) and the crop's affine transform, shared by training, decoding and prediction.

Scale is in units of 200 px (``PIXEL_STD``), the convention of the released models' code. Sizes are
(H, W), as everywhere in tpose (OpenCV's own ``dsize`` is (W, H): these functions translate).
"""

from __future__ import annotations

import cv2
import numpy as np

PIXEL_STD = 200.0


def box_to_center_scale(
    box: np.ndarray | list[float], aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """``box`` is (x, y, w, h); the short side is enlarged to ``aspect_ratio`` = W / H, then padded."""
    x, y, w, h = (float(v) for v in box[:4])
    center = np.array([x + (w - 1) * 0.5, y + (h - 1) * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * padding
    return center, scale


def _rotate(pt: np.ndarray, rad: float) -> np.ndarray:
    s, c = np.sin(rad), np.cos(rad)
    return np.array([pt[0] * c - pt[1] * s, pt[0] * s + pt[1] * c], dtype=np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(
    center: np.ndarray,
    scale: np.ndarray,
    rot: float,
    output_hw: tuple[int, int],
    inv: bool = False,
) -> np.ndarray:
    """2x3 matrix mapping image coordinates into an ``output_hw`` = (H, W) crop (or back, ``inv``).

    The crop covers ``scale * 200`` image pixels in width, rotated by ``rot`` degrees about ``center``.
    """
    dst_h, dst_w = int(output_hw[0]), int(output_hw[1])
    src_w = float(scale[0]) * PIXEL_STD
    rad = np.pi * rot / 180.0
    src_dir = _rotate(np.array([0.0, src_w * -0.5], dtype=np.float32), rad)
    dst_dir = np.array([0.0, dst_w * -0.5], dtype=np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to [..., 2] points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def crop(
    image: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    rot: float,
    output_hw: tuple[int, int],
) -> np.ndarray:
    """The affine crop of ``image`` (bilinear, zero border) at ``output_hw`` = (H, W)."""
    h, w = int(output_hw[0]), int(output_hw[1])
    matrix = get_affine_transform(center, scale, rot, (h, w))
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR)
