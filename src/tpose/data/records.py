"""One annotated (or detected) person: the unit every top-down data set, cache and evaluator shares.

Geometry stays in original image coordinates so that crops, caches and decoders never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
