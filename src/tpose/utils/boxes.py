"""Box arithmetic shared by the detector, the tracker and the evaluations: one IoU, one NMS, one enlargement.

Boxes are (x, y, w, h) in pixels unless a name says ``xyxy``; empty boxes overlap nothing (IoU 0).
"""

from __future__ import annotations

import numpy as np


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(x1, y1, x2, y2) boxes [N, 4] as (x, y, w, h); a box whose corners are swapped becomes empty."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of (x, y, w, h) boxes ``a`` [N, 4] and ``b`` [M, 4]; 0 where a box is empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    union = a[:, 2:].prod(-1)[:, None] + b[:, 2:].prod(-1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, best score first.

    A box is dropped when its IoU with a better kept box exceeds ``iou_threshold``. One :func:`box_iou` row per
    kept box, which is plenty for the tens of candidates a detector leaves after its score threshold.
    """
    boxes = xyxy_to_xywh(boxes_xyxy)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def enlarge_box(box: np.ndarray, factor: float) -> np.ndarray:
    """An (x, y, w, h) box scaled by ``factor`` about its centre."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    return np.array([cx - w * factor / 2, cy - h * factor / 2, w * factor, h * factor])
