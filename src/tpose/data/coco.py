"""COCO-format keypoint annotations as person records, following the released code's selection rules.

Kept: non-crowd persons with at least one labelled keypoint and a box that stays valid after clipping
to the image (x1 = max(0, x), x2 = min(width - 1, x1 + max(0, w - 1)); keep if area > 0 and x2 >= x1).
The file is checked first, so a malformed one fails naming the offending record and field.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .keypoint_sets import COCO17, KeypointSet, get_keypoint_set
from .records import PersonRecord


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _numbers(value: Any, count: int | None, where: str, field: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"{where}: field {field!r} must be a list of numbers, got {str(value)[:80]}")
    if count is not None and len(value) != count:
        raise ValueError(f"{where}: field {field!r} has {len(value)} numbers, expected {count}")
    if not all(math.isfinite(v) for v in value):
        raise ValueError(f"{where}: field {field!r} holds a non-finite number: {value}")
    return [float(v) for v in value]


def _check_coco_dict(data: Any, source: str, num_keypoints: int | None) -> None:
    """Raise ValueError naming the first malformed image or annotation entry."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a COCO annotation file holds a mapping, got {type(data).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}: missing or malformed top-level list {key!r}")
    image_ids = set()
    for i, img in enumerate(data["images"]):
        where = f"{source}: images[{i}] (id={img.get('id') if isinstance(img, dict) else '?'})"
        if not isinstance(img, dict):
            raise ValueError(f"{where}: an image entry must be a mapping")
        for field in ("id", "file_name", "width", "height"):
            if field not in img:
                raise ValueError(f"{where}: missing field {field!r}")
        if not isinstance(img["file_name"], str):
            raise ValueError(f"{where}: field 'file_name' must be a string")
        for field in ("id", "width", "height"):
            if not isinstance(img[field], int) or isinstance(img[field], bool):
                raise ValueError(f"{where}: field {field!r} must be an integer, got {img[field]!r}")
        image_ids.add(img["id"])
    for i, ann in enumerate(data["annotations"]):
        ident = ann.get("id") if isinstance(ann, dict) else "?"
        where = f"{source}: annotations[{i}] (id={ident})"
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: an annotation must be a mapping")
        for field in ("id", "image_id", "bbox", "category_id"):
            if field not in ann:
                raise ValueError(f"{where}: missing field {field!r}")
        if ann["image_id"] not in image_ids:
            raise ValueError(f"{where}: image_id {ann['image_id']!r} is not among the file's images")
        _numbers(ann["bbox"], 4, where, "bbox")
        if "keypoints" in ann:
            _numbers(ann["keypoints"], None if num_keypoints is None else 3 * num_keypoints, where, "keypoints")
        if "area" in ann and not isinstance(ann["area"], (int, float)):
            raise ValueError(f"{where}: field 'area' must be a number, got {ann['area']!r}")


def load_coco(ann: str | Path | dict[str, Any], num_keypoints: int | None = None) -> Any:
    """A checked, quietly indexed ``pycocotools.coco.COCO`` from a file path or an already parsed dict."""
    from pycocotools.coco import COCO

    source = "<dict>" if isinstance(ann, dict) else str(ann)
    data = ann if isinstance(ann, dict) else read_json(ann)
    _check_coco_dict(data, source, num_keypoints)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def clean_box(box: list[float], width: int, height: int) -> np.ndarray | None:
    """The released code's clipping of an (x, y, w, h) box to the image; None when nothing valid remains."""
    x, y, w, h = box
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)


def person_category_ids(coco: Any) -> set[int]:
    cats = coco.dataset.get("categories") or []
    ids = {c["id"] for c in cats if isinstance(c, dict) and c.get("name") == "person"}
    return ids or {1}


def file_keypoint_names(coco: Any) -> tuple[str, ...] | None:
    """The person category's ``keypoints`` names, if the file states them."""
    for cat in coco.dataset.get("categories") or []:
        if isinstance(cat, dict) and cat.get("id") in person_category_ids(coco) and cat.get("keypoints"):
            return tuple(str(n) for n in cat["keypoints"])
    return None


def coco_keypoint_set(ann: str | Path | dict[str, Any]) -> KeypointSet:
    """The keypoint set a COCO-format file declares (a built-in one when the names match one), or COCO-17
    when the file names none."""
    source = "<dict>" if isinstance(ann, dict) else str(ann)
    data = ann if isinstance(ann, dict) else read_json(ann)
    for cat in data.get("categories") or [] if isinstance(data, dict) else []:
        if isinstance(cat, dict) and cat.get("keypoints"):
            skeleton = [(a - 1, b - 1) for a, b in cat.get("skeleton") or []]  # COCO's skeleton is 1-based
            return KeypointSet.from_names(Path(source).stem, cat["keypoints"], skeleton)
    return COCO17


def check_keypoint_names(coco: Any, keypoint_set: KeypointSet, source: str) -> None:
    """A file whose person keypoints are named differently from ``keypoint_set`` would be misread: refuse it."""
    names = file_keypoint_names(coco)
    if names is not None and names != keypoint_set.names:
        raise ValueError(
            f"{source}: its keypoints are {list(names)} but keypoint set {keypoint_set.name!r} is "
            f"{list(keypoint_set.names)}; give the file's own set (or leave it out to read it from the file) and "
            "map joints onto the model's set by name"
        )


def load_coco_records(
    ann_file: str | Path | dict[str, Any],
    image_dir: str | Path,
    keypoint_set: KeypointSet | str | None = COCO17,
    require_keypoints: bool = True,
) -> tuple[list[PersonRecord], dict[str, int]]:
    """Ground-truth person records and counts of what was kept and skipped, by reason.

    ``keypoint_set`` must be the file's own (checked against ``categories[0].keypoints`` when the file
    names its keypoints); None reads it from the file. ``require_keypoints=False`` keeps persons without
    labelled keypoints (e.g. for box statistics).
    """
    source = "<dict>" if isinstance(ann_file, dict) else str(ann_file)
    keypoint_set = coco_keypoint_set(ann_file) if keypoint_set is None else get_keypoint_set(keypoint_set)
    k = keypoint_set.num_keypoints
    coco = load_coco(ann_file, num_keypoints=k)
    check_keypoint_names(coco, keypoint_set, source)
    persons = person_category_ids(coco)
    image_dir = Path(image_dir)
    stats = {"images": 0, "annotations": 0, "kept": 0, "crowd": 0, "no_keypoints": 0, "invalid_box": 0,
             "not_person": 0}
    records = []
    for image_id in sorted(coco.getImgIds()):
        img = coco.imgs[image_id]
        stats["images"] += 1
        for ann in coco.imgToAnns.get(image_id, []):
            stats["annotations"] += 1
            if ann["category_id"] not in persons:
                stats["not_person"] += 1
                continue
            if ann.get("iscrowd", 0):
                stats["crowd"] += 1
                continue
            box = clean_box([float(v) for v in ann["bbox"]], img["width"], img["height"])
            area = float(ann.get("area", ann["bbox"][2] * ann["bbox"][3]))
            if box is None or area <= 0:
                stats["invalid_box"] += 1
                continue
            if "keypoints" in ann:
                kpts = np.asarray(ann["keypoints"], dtype=np.float32).reshape(k, 3)
            else:
                kpts = np.zeros((k, 3), dtype=np.float32)
            if require_keypoints and not (kpts[:, 2] > 0).any():
                stats["no_keypoints"] += 1
                continue
            records.append(
                PersonRecord(
                    image_path=str(image_dir / img["file_name"]),
                    box=box,
                    keypoints=kpts,
                    image_id=image_id,
                    area=area,
                    ann_id=int(ann["id"]),
                )
            )
            stats["kept"] += 1
    return records, stats
