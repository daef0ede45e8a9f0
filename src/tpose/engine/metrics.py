"""Keypoint metrics without pycocotools: PCK / PCKh, OKS, OKS-NMS and the per-person rescoring.

These are the pieces evaluation applies per person or per image; COCO AP itself is left to
pycocotools (``coco_eval.py``) so that our numbers are the official ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tpose.data.keypoint_sets import COCO17, KeypointSet

# MPII's head size is 0.6 x the diagonal of the annotated head rectangle, a stand-in for the
# head segment length (Andriluka et al., CVPR 2014; the official evaluation's `SC_BIAS`)
MPII_HEAD_FACTOR = 0.6


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    normalizer: np.ndarray,
    threshold: float = 0.2,
) -> tuple[np.ndarray, float]:
    """Percentage of Correct Keypoints: error <= ``threshold`` x the person's ``normalizer``.

    ``pred``, ``gt`` are ``[N, K, 2]``, ``visible`` ``[N, K]`` (only joints > 0 count), ``normalizer``
    ``[N]`` in pixels (persons with a non-positive normaliser are skipped). Returns per-joint PCK
    ``[K]`` (NaN for a joint never visible) and the mean over all counted joints, i.e. per-joint PCK
    weighted by how often each joint is visible (MPII's convention; NaN if nothing counted).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pck expects pred and gt of the same shape [N, K, 2], got {pred.shape} and {gt.shape}")
    n, k, _ = pred.shape
    vis = np.asarray(visible).reshape(n, k) > 0
    norm = np.asarray(normalizer, dtype=np.float64).reshape(n)
    counted = vis & (norm[:, None] > 0)
    dist = np.linalg.norm(pred - gt, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        correct = (dist <= threshold * norm[:, None]) & counted
        per_joint = correct.sum(axis=0) / counted.sum(axis=0)
    total = counted.sum()
    mean = float(correct.sum() / total) if total else float("nan")
    return per_joint.astype(np.float64), mean


def joint_box_size(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """LSPET's PCK normaliser: the larger side of the box around each person's visible joints.

    ``keypoints`` ``[N, K, 2]``, ``visible`` ``[N, K]``; invisible joints are ignored (LSPET stores
    junk coordinates for them). A person with no visible joint gets 0 and so is skipped by ``pck``.
    """
    pts = np.asarray(keypoints, dtype=np.float64)[..., :2]
    vis = np.asarray(visible).reshape(pts.shape[:2]) > 0
    lo = np.where(vis[..., None], pts, np.inf).min(axis=1)
    hi = np.where(vis[..., None], pts, -np.inf).max(axis=1)
    size = (hi - lo).max(axis=1)
    return np.where(vis.any(axis=1), size, 0.0)


def mpii_head_size(head_boxes: np.ndarray) -> np.ndarray:
    """MPII's PCKh normaliser from head rectangles ``[N, 4]`` (x1, y1, x2, y2): 0.6 x their diagonal."""
    boxes = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 4)
    return MPII_HEAD_FACTOR * np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def head_segment_length(keypoints: np.ndarray, visible: np.ndarray, keypoint_set: KeypointSet) -> np.ndarray:
    """PCKh normaliser from the joints themselves: the neck -> head-top distance per person ``[N]``.

    Used where no head rectangle is annotated (LSP: ``neck``, MPII: ``upper_neck``, each to
    ``head_top``); 0 where either end is not visible, so ``pck`` skips that person.
    """
    names = keypoint_set.names
    neck = next((n for n in ("upper_neck", "neck") if n in names), None)
    if neck is None or "head_top" not in names:
        raise ValueError(
            f"keypoint set {keypoint_set.name!r} has no neck/upper_neck and head_top keypoints, "
            "so PCKh needs head boxes (mpii_head_size) instead"
        )
    a, b = keypoint_set.index(neck), keypoint_set.index("head_top")
    pts = np.asarray(keypoints, dtype=np.float64)[..., :2]
    vis = np.asarray(visible).reshape(pts.shape[:2]) > 0
    length = np.linalg.norm(pts[:, a] - pts[:, b], axis=-1)
    return np.where(vis[:, a] & vis[:, b], length, 0.0)


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_size: np.ndarray,
    threshold: float = 0.5,
) -> tuple[np.ndarray, float]:
    """PCKh@``threshold``: PCK normalised by head size (``mpii_head_size`` or ``head_segment_length``)."""
    return pck(pred, gt, visible, head_size, threshold)


def oks(
    pred: np.ndarray,
    gt: np.ndarray,
    area: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Object Keypoint Similarity of every prediction with every ground-truth person, ``[N, M]``.

    ``pred`` ``[N, K, 2+]``, ``gt`` ``[M, K, 2+]``, ``area`` ``[M]`` (the ground truth's), ``visible``
    ``[M, K]`` (default: the third column of ``gt`` if present, else all). COCO's definition:
    mean over visible joints of exp(-d^2 / (2 * area * (2 sigma)^2)); 0 for a person with no visible joint.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if visible is None:
        visible = g[..., 2] > 0 if g.shape[-1] > 2 else np.ones(g.shape[:2], dtype=bool)
    areas = np.broadcast_to(np.asarray(area, dtype=np.float64).reshape(1, -1), (p.shape[0], g.shape[0]))
    return _oks_matrix(p[..., :2], g[..., :2], areas, sigmas, np.asarray(visible).reshape(g.shape[:2]) > 0)


def _oks_matrix(
    a: np.ndarray, b: np.ndarray, area: np.ndarray, sigmas: Sequence[float] | np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """OKS [N, M] of points a [N, K, 2] against b [M, K, 2] with per-pair areas [N, M], joints masked by b's mask."""
    s = np.asarray(sigmas, dtype=np.float64)
    if s.shape[0] != a.shape[1] or b.shape[1] != a.shape[1]:
        raise ValueError(f"OKS needs {a.shape[1]} sigmas and keypoints alike, got {s.shape[0]} sigmas, {b.shape[1]} gt")
    variances = (2 * s) ** 2
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)  # [N, M, K]
    e = d2 / variances / (area[..., None] + np.spacing(1)) / 2
    weight = mask[None].astype(np.float64)
    count = weight.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (np.exp(-e) * weight).sum(-1) / count, 0.0)


def oks_nms(
    persons: Sequence[Mapping[str, Any]],
    thresh: float = 0.9,
    sigmas: Sequence[float] | np.ndarray = COCO17.sigmas,
) -> list[int]:
    """Indices of the persons kept by greedy OKS non-maximum suppression, best score first.

    Each person is a mapping with ``keypoints`` ``[K, 2+]`` (image coordinates), ``score`` and
    ``area`` (the crop's area in pixels). A person is dropped when its OKS with a kept, higher-scored
    one exceeds ``thresh``; as in the released code, the OKS of a pair uses the mean of their two
    areas and all K joints.
    """
    if len(persons) == 0:
        return []
    kpts = np.stack([np.asarray(p["keypoints"], dtype=np.float64)[:, :2] for p in persons])
    scores = np.array([float(p["score"]) for p in persons])
    areas = np.array([float(p["area"]) for p in persons])
    mean_area = (areas[:, None] + areas[None, :]) / 2
    sim = _oks_matrix(kpts, kpts, mean_area, sigmas, np.ones(kpts.shape[:2], dtype=bool))
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(persons), dtype=bool)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= sim[i] > thresh
    return keep


def rescore(keypoint_scores: np.ndarray, box_score: np.ndarray | float, thresh: float = 0.2) -> np.ndarray:
    """Person score = box score x mean of its keypoint scores above ``thresh`` (0 if none is).

    ``keypoint_scores`` ``[N, K]``, ``box_score`` ``[N]`` (1 for ground-truth boxes). Returns ``[N]``.
    """
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    ks = ks.reshape(1, -1) if ks.ndim == 1 else ks
    above = ks > thresh
    count = above.sum(axis=1)
    mean = np.where(count > 0, (ks * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    return mean * np.asarray(box_score, dtype=np.float64).reshape(-1)
