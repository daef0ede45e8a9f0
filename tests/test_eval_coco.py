"""COCO keypoint AP through pycocotools on hand-built ground truth whose AP we can derive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tpose.data.keypoint_sets import COCO17
from tpose.engine.coco_eval import STAT_NAMES, coco_keypoint_eval, coco_keypoint_results, write_coco_results

SIGMAS = np.array(COCO17.sigmas)
THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _person(rng: np.random.Generator, image_id: int, ann_id: int, size: float, labelled: int = 17) -> dict:
    x0, y0 = rng.uniform(0, 200, 2)
    kpts = np.zeros((17, 3))
    kpts[:, :2] = rng.uniform([x0, y0], [x0 + size, y0 + size], (17, 2))
    kpts[:labelled, 2] = 2
    kpts[labelled:] = 0
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "area": size * size,
        "bbox": [x0, y0, size, size],
        "keypoints": kpts.reshape(-1).tolist(),
        "num_keypoints": labelled,
    }


def _ground_truth(people: list[dict]) -> dict:
    image_ids = sorted({p["image_id"] for p in people})
    return {
        "images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in image_ids],
        "annotations": people,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names), "skeleton": []}],
    }


def _as_prediction(ann: dict, shift: float = 0.0, score: float = 1.0) -> dict:
    kpts = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
    kpts[:, 0] += shift
    kpts[:, 2] = 0.9
    return {"image_id": ann["image_id"], "keypoints": kpts, "score": score}


def test_predictions_equal_to_ground_truth_score_one() -> None:
    rng = np.random.default_rng(0)
    people = [_person(rng, 1, 1, 60.0), _person(rng, 1, 2, 150.0), _person(rng, 2, 3, 200.0, labelled=12)]
    stats = coco_keypoint_eval(_ground_truth(people), coco_keypoint_results(_as_prediction(p) for p in people))
    assert tuple(stats) == STAT_NAMES
    assert all(stats[name] == pytest.approx(1.0) for name in STAT_NAMES)  # one medium, two large persons


def test_a_shifted_person_passes_only_the_thresholds_below_its_oks() -> None:
    rng = np.random.default_rng(1)
    person = _person(rng, 1, 1, 150.0)
    shift = 9.0
    expected_oks = np.mean(np.exp(-(shift**2) / (2 * person["area"] * (2 * SIGMAS) ** 2)))
    passed = int((THRESHOLDS <= expected_oks).sum())
    assert 0 < passed < 10 and np.abs(THRESHOLDS - expected_oks).min() > 0.01  # a case that can tell
    stats = coco_keypoint_eval(_ground_truth([person]), [_as_prediction(person, shift)])
    assert stats["AP"] == pytest.approx(passed / 10)
    assert stats["AR"] == pytest.approx(passed / 10)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(float(expected_oks >= 0.75))
    assert stats["APm"] == -1.0  # no medium ground truth: pycocotools reports -1


def test_half_the_persons_missing() -> None:
    rng = np.random.default_rng(2)
    people = [_person(rng, 1 + i // 2, i + 1, 150.0) for i in range(4)]
    stats = coco_keypoint_eval(_ground_truth(people), [_as_prediction(p) for p in people[::2]])
    # precision 1 up to recall 0.5, nothing beyond: 51 of pycocotools' 101 recall points
    assert stats["AP"] == pytest.approx(51 / 101)
    assert stats["AR"] == pytest.approx(0.5)


def test_ground_truth_without_keypoints_is_ignored_and_low_scored_extras_cost_nothing() -> None:
    rng = np.random.default_rng(3)
    people = [_person(rng, 1, 1, 150.0), _person(rng, 1, 2, 120.0, labelled=0)]
    extra = _as_prediction(people[0], shift=400.0, score=0.1)  # a false positive ranked below every hit
    stats = coco_keypoint_eval(_ground_truth(people), [_as_prediction(people[0]), extra])
    assert stats["AP"] == pytest.approx(1.0)
    worse = coco_keypoint_eval(_ground_truth(people), [_as_prediction(people[0], score=0.05), extra])
    assert worse["AP"] < 1.0  # the same false positive ranked first does cost


def test_results_file_round_trip_and_image_subset(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    people = [_person(rng, 1, 1, 150.0), _person(rng, 2, 2, 150.0)]
    written = write_coco_results([_as_prediction(people[0])], tmp_path / "out" / "results.json")
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert records == written
    assert records[0]["category_id"] == 1 and records[0]["image_id"] == 1
    assert len(records[0]["keypoints"]) == 51 and records[0]["score"] == 1.0
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_ground_truth(people)))
    everything = coco_keypoint_eval(gt_path, tmp_path / "out" / "results.json", sigmas=SIGMAS)
    subset = coco_keypoint_eval(gt_path, tmp_path / "out" / "results.json", sigmas=SIGMAS, image_ids=[1])
    assert everything["AR"] == pytest.approx(0.5) and subset["AP"] == pytest.approx(1.0)


def test_errors_and_empty_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    gt = _ground_truth([_person(rng, 1, 1, 150.0)])
    assert coco_keypoint_eval(gt, []) == {name: 0.0 for name in STAT_NAMES}
    bad = _as_prediction(gt["annotations"][0])
    bad["image_id"] = 99
    with pytest.raises(ValueError, match="99"):
        coco_keypoint_eval(gt, coco_keypoint_results([bad]))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        coco_keypoint_eval(tmp_path / "missing.json", [])
    with pytest.raises(ValueError, match="person 0"):
        coco_keypoint_results([{"image_id": 1, "keypoints": np.zeros((17, 2)), "score": 1.0}])
    with pytest.raises(ValueError, match="sigmas"):
        coco_keypoint_eval(gt, coco_keypoint_results([_as_prediction(gt["annotations"][0])]), sigmas=SIGMAS[:5])
