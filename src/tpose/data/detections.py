"""Person boxes from a detector (COCO detection-results JSON) as records, for "detector boxes" evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .coco import load_coco, read_json
from .records import PersonRecord


def _image_paths(image_info: Mapping[int, str] | str | Path | dict[str, Any], image_dir: Path) -> dict[int, str]:
    if isinstance(image_info, Mapping) and "images" not in image_info:
        return {int(i): str(image_dir / name) for i, name in image_info.items()}
    coco = load_coco(image_info)  # an annotation file (or its parsed dict) naming the images
    return {int(i): str(image_dir / img["file_name"]) for i, img in coco.imgs.items()}


def load_detection_records(
    det_json: str | Path | list[dict[str, Any]],
    image_dir: str | Path,
    image_info: Mapping[int, str] | str | Path,
    num_keypoints: int,
    min_score: float = 0.0,
    category_id: int = 1,
) -> list[PersonRecord]:
    """One record per detection of ``category_id`` scoring at least ``min_score``, in file order.

    ``image_info`` maps image ids to file names (relative to ``image_dir``), or is a COCO annotation
    file whose ``images`` do. Boxes are used as detected (no clipping), keypoints are all unlabelled,
    and ``score`` is the detector's.
    """
    source = "<list>" if isinstance(det_json, list) else str(det_json)
    detections = det_json if isinstance(det_json, list) else read_json(det_json)
    if not isinstance(detections, list):
        raise ValueError(f"{source}: a detection-results file holds a list of detections, got "
                         f"{type(detections).__name__}")
    paths = _image_paths(image_info, Path(image_dir))
    records = []
    for i, det in enumerate(detections):
        where = f"{source}: detection [{i}]"
        if not isinstance(det, dict):
            raise ValueError(f"{where}: a detection must be a mapping, got {type(det).__name__}")
        for field in ("image_id", "bbox", "score"):
            if field not in det:
                raise ValueError(f"{where}: missing field {field!r}")
        if int(det.get("category_id", category_id)) != category_id:
            continue
        score = det["score"]
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"{where}: field 'score' must be a finite number, got {score!r}")
        if score < min_score:
            continue
        box = det["bbox"]
        if (not isinstance(box, (list, tuple)) or len(box) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)):
            raise ValueError(f"{where}: field 'bbox' must be 4 finite numbers (x, y, w, h), got {box!r}")
        image_id = det["image_id"]
        if image_id not in paths:
            raise ValueError(f"{where}: image_id {image_id!r} is not among the known images")
        records.append(
            PersonRecord(
                image_path=paths[image_id],
                box=np.asarray(box, dtype=np.float32),
                keypoints=np.zeros((num_keypoints, 3), dtype=np.float32),
                image_id=int(image_id),
                score=float(score),
            )
        )
    return records
