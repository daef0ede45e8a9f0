"""One annotated (or detected) person: the unit every top-down data set, cache and evaluator shares.

Geometry stays in original image coordinates so that crops, caches and decoders never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .keypoint_sets import KeypointSet, get_keypoint_set


@dataclass
class PersonRecord:
    """``box`` is (x, y, w, h); ``keypoints`` [K, 3] is (x, y, v) with v > 0 for labelled joints.

    ``area`` is the COCO segment area (used by OKS); when not given it defaults to the box area.
    ``score`` is the detector's confidence (1 for ground truth), ``ann_id`` the source annotation id.
    """

    image_path: str
    box: np.ndarray
    keypoints: np.ndarray
    image_id: int
    score: float = 1.0
    area: float = 0.0
    ann_id: int = -1

    def __post_init__(self) -> None:
        self.image_path = str(self.image_path)
        self.box = np.asarray(self.box, dtype=np.float32).reshape(-1)
        if self.box.shape != (4,):
            raise ValueError(f"record {self.describe()}: box must hold 4 numbers (x, y, w, h), got {self.box.shape}")
        kpts = np.asarray(self.keypoints, dtype=np.float32)
        if kpts.ndim != 2 or kpts.shape[1] != 3:
            raise ValueError(f"record {self.describe()}: keypoints must be [K, 3] (x, y, v), got {kpts.shape}")
        self.keypoints = kpts
        self.image_id = int(self.image_id)
        self.score = float(self.score)
        self.ann_id = int(self.ann_id)
        self.area = float(self.area) if self.area > 0 else float(max(self.box[2], 0) * max(self.box[3], 0))

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def visible(self) -> np.ndarray:
        """[K] bool: the joints that carry a label."""
        return self.keypoints[:, 2] > 0

    def describe(self) -> str:
        """Short identification for error messages."""
        ann = f", ann_id={self.ann_id}" if self.ann_id >= 0 else ""
        return f"(image_id={self.image_id}{ann}, image={self.image_path})"


def remap_keypoints(
    keypoints: np.ndarray,
    src_set: KeypointSet | str,
    dst_set: KeypointSet | str,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Keypoints [..., K_src, C] in ``dst_set`` order [..., K_dst, C], matched by name.

    ``names`` limits the transfer (default: every name both sets share, e.g. the 12 ``LIMB_JOINTS`` of
    COCO-17 and LSP-14); the other destination joints are zero, so v = 0 (unlabelled).
    """
    src, dst = get_keypoint_set(src_set), get_keypoint_set(dst_set)
    kpts = np.asarray(keypoints)
    if kpts.ndim < 2 or kpts.shape[-2] != src.num_keypoints:
        raise ValueError(f"keypoints of shape {kpts.shape} do not hold the {src.num_keypoints} joints of {src.name!r}")
    shared = [n for n in dst.names if n in src.names] if names is None else list(names)
    missing = [n for n in shared if n not in src.names or n not in dst.names]
    if missing:
        raise ValueError(f"joints {missing} are not in both {src.name!r} and {dst.name!r}")
    out = np.zeros((*kpts.shape[:-2], dst.num_keypoints, kpts.shape[-1]), dtype=kpts.dtype)
    dst_idx = [dst.index(n) for n in shared]
    src_idx = [src.index(n) for n in shared]
    out[..., dst_idx, :] = kpts[..., src_idx, :]
    return out


def remap_records(
    records: Sequence[PersonRecord],
    src_set: KeypointSet | str,
    dst_set: KeypointSet | str,
    names: Sequence[str] | None = None,
) -> list[PersonRecord]:
    """Copies of ``records`` with keypoints in ``dst_set`` order (see ``remap_keypoints``); boxes unchanged."""
    return [replace(r, keypoints=remap_keypoints(r.keypoints, src_set, dst_set, names)) for r in records]
