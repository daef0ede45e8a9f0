"""Gaussian heatmap codec: encode keypoints into training targets (decoding lives in ``decode.py``).

Keeping encode and decode together (MMPose's codec idea) keeps the sub-pixel conventions of both in
one place: a keypoint at heatmap coordinate (x, y) is the centre of pixel column x, row y.
"""

from __future__ import annotations

import numpy as np


def encode_gaussian(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_hw: tuple[int, int],
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased targets: a Gaussian (peak 1) at the exact sub-pixel location of each keypoint.

    ``keypoints`` [K, 2] are in heatmap coordinates, ``visible`` [K] > 0 marks labelled joints,
    ``heatmap_hw`` is (H, W). Returns ``target``
    [K, H, W] float32 and ``weight`` [K] float32, zero for unlabelled joints and for those whose
    Gaussian lies wholly outside the heatmap.
    """
    h, w = int(heatmap_hw[0]), int(heatmap_hw[1])
    kpts = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2)
    k = kpts.shape[0]
    weight = (np.asarray(visible).reshape(k) > 0).astype(np.float32)
    radius = 3 * sigma
    outside = (
        (kpts[:, 0] + radius < 0) | (kpts[:, 1] + radius < 0) | (kpts[:, 0] - radius >= w) | (kpts[:, 1] - radius >= h)
    )
    weight[outside] = 0.0
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    gx = np.exp(-((xs[None, :] - kpts[:, :1]) ** 2) / (2 * sigma**2))  # [K, W]
    gy = np.exp(-((ys[None, :] - kpts[:, 1:2]) ** 2) / (2 * sigma**2))  # [K, H]
    target = gy[:, :, None] * gx[:, None, :]
    target *= weight[:, None, None]
    return target.astype(np.float32), weight
