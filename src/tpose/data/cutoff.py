"""Persons cut off by the photo's lower edge: everyday photos often end at the chest or at the hips.

LSP and LSPET almost never show that, so a model trained on them has not seen a person whose legs are
missing. A cut is one image row placed along the person's torso: ``level`` 0 is the shoulders' mean height,
1 the hips'; 0.5 ends the photo at the chest, 1.3 just below the hips (someone seated behind a table). Below
that row the photo has no pixels (black, as a crop reaching past an image's edge) and the person no labels.
Evaluation cuts every upright person at one named level (``tpose eval --cut-at``); training cuts a share of
its samples at random levels (``augment.cutoff_prob``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .keypoint_sets import KeypointSet
from .records import PersonRecord

CUT_LEVELS = {"chest": 0.5, "hips": 1.3}  # name -> level (0 shoulders, 1 hips)


def _side_rows(keypoints: np.ndarray, names: tuple[str, ...], words: tuple[str, ...]) -> np.ndarray:
    idx = [i for i, n in enumerate(names) if any(w in n.lower() for w in words)]
    labelled = [i for i in idx if keypoints[i, 2] > 0]
    return keypoints[labelled, 1]


def torso_rows(keypoints: np.ndarray, keypoint_set: KeypointSet) -> tuple[float, float] | None:
    """Mean image row of the labelled shoulders and of the labelled hips, or None when a side has none or
    the hips are not below the shoulders (a person lying or upside down has no "lower edge" to cut at)."""
    shoulders = _side_rows(keypoints, keypoint_set.names, ("shoulder",))
    hips = _side_rows(keypoints, keypoint_set.names, ("hip",))
    if len(shoulders) == 0 or len(hips) == 0:
        return None
    top, bottom = float(shoulders.mean()), float(hips.mean())
    return (top, bottom) if bottom > top else None


def cut_row(keypoints: np.ndarray, keypoint_set: KeypointSet, level: float) -> float | None:
    """The image row at ``level`` along the torso (see the module docstring), or None (see ``torso_rows``)."""
    rows = torso_rows(keypoints, keypoint_set)
    if rows is None:
        return None
    top, bottom = rows
    return top + float(level) * (bottom - top)


def cut_record(record: PersonRecord, row: float) -> PersonRecord:
    """``record`` as if its photo ended at image row ``row``: joints at or below it unlabelled, the box
    clipped to it (at least one pixel high), ``image_bottom`` set so that the data set blanks the rest."""
    kpts = record.keypoints.copy()
    kpts[kpts[:, 1] >= row] = 0.0
    x, y, w, h = (float(v) for v in record.box)
    bottom = min(y + h, row)
    return replace(record, keypoints=kpts, box=np.array([x, y, w, max(bottom - y, 1.0)], dtype=np.float32),
                   image_bottom=float(row))


def cut_records(records: Sequence[PersonRecord], keypoint_set: KeypointSet, level: float) -> list[PersonRecord]:
    """Each upright person of ``records`` cut at ``level`` (see ``cut_row``); the others are left out."""
    out = []
    for rec in records:
        row = cut_row(rec.keypoints, keypoint_set, level)
        if row is not None:
            out.append(cut_record(rec, row))
    return out


def blank_below(image: np.ndarray, row: float, crop_to_image: np.ndarray) -> np.ndarray:
    """Zero the pixels of a crop that come from image rows at or below ``row``, in place.

    ``crop_to_image`` is the 2x3 affine matrix from crop pixels to original image coordinates (the inverse of
    the crop's matrix), so rotated and flipped crops get a slanted edge where the photo would end.
    """
    h, w = image.shape[:2]
    a, b, c = (float(v) for v in crop_to_image[1])
    rows = a * np.arange(w, dtype=np.float32)[None, :] + b * np.arange(h, dtype=np.float32)[:, None] + c
    image[rows >= row] = 0
    return image
