"""Prediction files: a readable per-image (or per-video) JSON with named keypoints, and COCO results for scoring.

The COCO results file is what ``pycocotools``' ``COCO.loadRes`` and the COCO evaluation server expect:
one record per person with the keypoints flattened to ``[x1, y1, s1, x2, ...]``. A model of another keypoint
set (the shipped LSP-14 one) writes them in COCO-17 order by joint name; joints it does not predict (COCO's
nose, eyes and ears for LSP-14) are written as ``0, 0, 0`` and named by :func:`coco_absent_joints`, never
invented.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..data.keypoint_sets import COCO17, KeypointSet
from ..utils.files import atomic_write

DECIMALS = 2


class _Pose(Protocol):
    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    box_score: float
    score: float


def _r(value: float, decimals: int = DECIMALS) -> float:
    return round(float(value), decimals)


def person_record(person: _Pose, keypoint_names: Sequence[str] | None = None) -> dict[str, Any]:
    """``{track_id (videos), box, box_score, score, keypoints}``; keypoints are ``{name: [x, y, score]}`` when
    names are given."""
    kpts = np.asarray(person.keypoints, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(person.scores, dtype=np.float64).reshape(-1)
    triples = [[_r(x), _r(y), _r(s, 4)] for (x, y), s in zip(kpts, scores, strict=True)]
    keypoints: dict[str, list[float]] | list[list[float]]
    if keypoint_names:
        if len(keypoint_names) != len(triples):
            raise ValueError(f"{len(keypoint_names)} keypoint names for {len(triples)} keypoints")
        keypoints = dict(zip(keypoint_names, triples, strict=True))
    else:
        keypoints = triples
    track = getattr(person, "track_id", None)
    return {
        **({"track_id": int(track)} if track is not None else {}),
        "box": [_r(v) for v in np.asarray(person.box).reshape(-1)[:4]],
        "box_score": _r(person.box_score, 4),
        "score": _r(person.score, 4),
        "keypoints": keypoints,
    }


def image_record(
    file: str,
    image_shape: tuple[int, int],
    persons: Iterable[_Pose],
    keypoint_set: KeypointSet | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The per-image JSON: ``file``, ``size`` (width, height), ``keypoint_set`` and ``persons``.

    ``image_shape`` is the photo's (H, W). ``extra`` fields (e.g. ``image_id``, ``boxes``) are added as given.
    """
    names = keypoint_set.names if keypoint_set is not None else None
    record: dict[str, Any] = {
        "file": str(file),
        "size": {"width": int(image_shape[1]), "height": int(image_shape[0])},
    }
    if keypoint_set is not None:
        record["keypoint_set"] = keypoint_set.name
    record.update(extra)
    record["persons"] = [person_record(p, names) for p in persons]
    return record


def video_record(
    file: str,
    fps: float,
    frame_size: tuple[int, int],
    frames: Iterable[tuple[int, Iterable[_Pose]]],
    keypoint_set: KeypointSet | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One JSON for a whole video: per-frame ``{frame, time, persons}``; ``frame_size`` is (H, W)."""
    names = keypoint_set.names if keypoint_set is not None else None
    record: dict[str, Any] = {
        "file": str(file),
        "fps": _r(fps, 3),
        "size": {"width": int(frame_size[1]), "height": int(frame_size[0])},
    }
    if keypoint_set is not None:
        record["keypoint_set"] = keypoint_set.name
    record.update(extra)
    record["frames"] = [
        {"frame": int(i), "time": _r(i / fps if fps else 0.0, 3), "persons": [person_record(p, names) for p in ps]}
        for i, ps in frames
    ]
    return record


def coco_absent_joints(keypoint_set: KeypointSet | None) -> list[str]:
    """COCO-17 joints that a model of ``keypoint_set`` does not predict (written as zeros in COCO results)."""
    if keypoint_set is None or keypoint_set.names == COCO17.names:
        return []
    return [n for n in COCO17.names if n not in keypoint_set.names]


def coco_keypoint_results(
    image_id: int, persons: Iterable[_Pose], category_id: int = 1, keypoint_set: KeypointSet | None = None
) -> list[dict[str, Any]]:
    """COCO keypoint results records for one image (keypoint score as the third value of each triple).

    With a ``keypoint_set`` other than COCO-17 that shares joint names with it, the triples follow COCO-17's
    order and its absent joints are zeros (see the module doc); with none, the model's own order is kept.
    """
    order = None
    if keypoint_set is not None and keypoint_set.names != COCO17.names:
        index = {n: i for i, n in enumerate(keypoint_set.names)}
        if not any(n in index for n in COCO17.names):
            raise ValueError(f"keypoint set {keypoint_set.name!r} shares no joint name with COCO-17: its "
                             "predictions cannot be written as COCO keypoint results")
        order = [index.get(n) for n in COCO17.names]
    out = []
    for p in persons:
        kpts = np.asarray(p.keypoints, dtype=np.float64).reshape(-1, 2)
        scores = np.asarray(p.scores, dtype=np.float64).reshape(-1)
        triples = np.concatenate([kpts, scores[:, None]], axis=1)
        if order is not None:
            triples = np.stack([triples[i] if i is not None else np.zeros(3) for i in order])
        flat = triples.reshape(-1)
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [_r(v, 3) for v in flat],
                "score": _r(p.score, 5),
                "bbox": [_r(v) for v in np.asarray(p.box).reshape(-1)[:4]],
            }
        )
    return out


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    """Write JSON through a temporary file, so an interrupted run never leaves half a file."""
    text = json.dumps(data, indent=indent, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))
