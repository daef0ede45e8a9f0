"""COCO keypoint results files and the official AP/AR through pycocotools.

pycocotools conventions worth knowing: ground-truth persons with no labelled keypoints are ignored
(detections matched to them count neither way), only 20 detections per image are scored (those
with the highest score), there is no "small" area range, and the default image set is every
image of the ground truth, so results for a subset must say which images they cover.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def coco_keypoint_results(persons: Iterable[Mapping[str, Any]], category_id: int = 1) -> list[dict[str, Any]]:
    """Persons (``image_id``, ``keypoints`` ``[K, 3]`` or flat, of x, y, score; ``score``) as COCO result records.

    A person's own ``category_id`` wins over the argument.
    """
    records = []
    for i, person in enumerate(persons):
        try:
            kpts = np.asarray(person["keypoints"], dtype=np.float64)
            if kpts.ndim == 1 and kpts.size % 3 == 0:
                kpts = kpts.reshape(-1, 3)
            if kpts.ndim != 2 or kpts.shape[1] != 3:
                raise ValueError(f"keypoints must be [K, 3] (x, y, score), got shape {kpts.shape}")
            records.append(
                {
                    "image_id": int(person["image_id"]),
                    "category_id": int(person.get("category_id", category_id)),
                    "keypoints": [round(float(v), 3) for v in kpts.reshape(-1)],
                    "score": float(person["score"]),
                }
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"person {i} cannot be written as a COCO keypoint result: {err}") from err
    return records


def write_coco_results(
    persons: Iterable[Mapping[str, Any]], path: str | Path, category_id: int = 1
) -> list[dict[str, Any]]:
    """Write persons as a COCO keypoint results JSON at ``path`` (folders created); returns the records."""
    records = coco_keypoint_results(persons, category_id)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records))
    return records


def load_coco(coco_gt: Any) -> Any:
    """A pycocotools ``COCO`` from a path to an annotation JSON, a loaded dict, or a ``COCO`` itself."""
    from pycocotools.coco import COCO

    if isinstance(coco_gt, COCO):
        return coco_gt
    if isinstance(coco_gt, Mapping):
        gt = COCO()
        gt.dataset = dict(coco_gt)
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt
    path = Path(coco_gt)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a readable COCO annotation file: {err}") from err


def coco_keypoint_eval(
    coco_gt: Any,
    results: str | Path | Sequence[Mapping[str, Any]],
    sigmas: Sequence[float] | np.ndarray | None = None,
    image_ids: Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO keypoint AP/AR (pycocotools ``COCOeval``, iouType ``"keypoints"``) as a dict of the 10 stats.

    ``coco_gt``: annotation JSON path, dict or ``COCO``; ``results``: a results JSON path, records, or
    persons as ``coco_keypoint_results`` takes them; ``sigmas``: the keypoint set's OKS sigmas
    (pycocotools' COCO-17 ones if None); ``image_ids``: the images to score (default all of the ground
    truth). No results at all scores 0 everywhere. ``verbose`` prints pycocotools' table.
    """
    from pycocotools.cocoeval import COCOeval

    gt = load_coco(coco_gt)
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise FileNotFoundError(f"COCO results file not found: {path}")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not a readable COCO results file: {err}") from err
        if not isinstance(loaded, list):
            raise ValueError(f"{path}: a COCO results file holds a list of records, got {type(loaded).__name__}")
        records = coco_keypoint_results(loaded)
    else:
        records = coco_keypoint_results(results)
    if image_ids is not None:
        wanted = {int(i) for i in image_ids}
        records = [r for r in records if int(r["image_id"]) in wanted]
    if not records:
        return {name: 0.0 for name in STAT_NAMES}
    unknown = {int(r["image_id"]) for r in records} - set(gt.getImgIds())
    if unknown:
        raise ValueError(f"results name image ids that the ground truth lacks: {sorted(unknown)[:10]}")
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        dt = gt.loadRes(records)
        evaluator = COCOeval(gt, dt, "keypoints")
        if sigmas is not None:
            num_kpts = len(records[0]["keypoints"]) // 3
            if len(sigmas) != num_kpts:
                raise ValueError(f"{len(sigmas)} OKS sigmas for results with {num_kpts} keypoints")
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if image_ids is not None:
            evaluator.params.imgIds = sorted({int(i) for i in image_ids})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats, strict=True)}
