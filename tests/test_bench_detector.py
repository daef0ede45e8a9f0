"""Detector benchmark helpers: the greedy matching rules, the target sets and the timing and report plumbing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tpose.inference.detector import PersonBoxes, YoloxDetector

from .benchmark_scripts import load
from .conftest import COCO_MINI, COCO_MINI_ANN, DETECTOR, LSPET, needs_coco_mini, needs_detector, needs_lspet

bench = load("bench_detector")
ImageTargets = bench.ImageTargets
_markdown = bench._markdown
coco_targets = bench.coco_targets
enlarge_box = bench.enlarge_box
lspet_targets = bench.lspet_targets
match_greedy = bench.match_greedy
pick_block = bench.pick_block
score_detections = bench.score_detections
time_detector = bench.time_detector
busy_core = load("common").busy_core


def _image(targets: list, ignore: list = (), crowd: list = ()) -> ImageTargets:
    return ImageTargets(Path("x.jpg"), np.asarray(targets, float).reshape(-1, 4),
                        np.asarray(ignore, float).reshape(-1, 4), np.asarray(crowd, bool))


def test_greedy_matching_hits_duplicates_and_ignored_people() -> None:
    image = _image([[0, 0, 100, 200], [300, 0, 100, 200]], ignore=[[600, 0, 50, 100]], crowd=[False])
    found = PersonBoxes(
        np.array([[2, 2, 100, 200],      # hit on target 0
                  [5, 5, 100, 200],      # duplicate of target 0: a false positive
                  [600, 0, 52, 100],     # another annotated person: ignored
                  [800, 800, 50, 50],    # nobody there: a false positive
                  [330, 0, 100, 200]]),  # IoU 0.54 with target 1: hit despite the lowest score
        np.array([0.9, 0.8, 0.7, 0.6, 0.5]))
    assert match_greedy(found, image) == (2, 2)
    stats = score_detections([image], [found])
    assert stats["recall"] == 1.0 and stats["precision"] == 0.5 and stats["ignored"] == 1
    assert match_greedy(PersonBoxes.empty(), image) == (0, 0)
    assert score_detections([image], [PersonBoxes.empty()])["recall"] == 0.0


def test_greedy_matching_takes_detections_by_score() -> None:
    # the better-scored detection takes the target even though the other overlaps it more
    image = _image([[0, 0, 100, 100]])
    found = PersonBoxes(np.array([[0, 0, 100, 100], [20, 0, 100, 100]]), np.array([0.4, 0.9]))
    assert match_greedy(found, image) == (1, 1)


def test_crowd_regions_by_intersection_over_detection_area() -> None:
    image = _image([], ignore=[[0, 0, 400, 200]], crowd=[True])
    inside = PersonBoxes(np.array([[10, 10, 50, 100]]), np.array([0.8]))  # IoU 0.06, fully inside the crowd
    assert match_greedy(inside, image) == (0, 1)
    assert match_greedy(inside, image, crowd_ioa=True) == (0, 0)


def test_enlarge_box_about_its_centre() -> None:
    np.testing.assert_allclose(enlarge_box(np.array([10, 20, 100, 50]), 1.2), [0, 15, 120, 60])


@needs_coco_mini
def test_coco_mini_has_72_targets() -> None:
    images = coco_targets(COCO_MINI_ANN, COCO_MINI / "train2017")
    assert len(images) == 80 and all(i.path.is_file() for i in images)
    assert sum(len(i.targets) for i in images) == 72
    assert sum(len(i.targets) + len(i.ignore) for i in images) == 172  # every person annotation is one or other
    assert sum(int(i.ignore_crowd.sum()) for i in images) == 5


@needs_lspet
def test_lspet_validation_targets() -> None:
    images = lspet_targets(LSPET, 9001, 9010)
    assert len(images) == 10 and images[0].path.name == "im09001.jpg"
    assert all(len(i.targets) == 1 and len(i.ignore) == 0 for i in images)


@needs_detector
def test_timing_and_report_plumbing() -> None:
    det = YoloxDetector(DETECTOR, 320, threads=1)
    images = [np.full((240, 320, 3), 128, np.uint8), np.full((300, 200, 3), 90, np.uint8)]
    with busy_core() as pid:
        assert pid > 0
        t = time_detector(det, images, warmup=1, rounds=10, load_pids=(pid,))
    assert t["n"] == 20 and 0 < t["ms_min"] <= t["ms_median"] <= t["ms_p90"]
    assert t["ms_onnxruntime"] < t["ms_median"] + 1e-9
    # the busy loop gets some share of a core even on a loaded machine (/proc counts in 10 ms ticks)
    assert t["load_cores"] > 0.05 and t["other_cores"] is not None and t["other_cores"] >= 0
    assert 0 < t["own_cores"] < 1.5  # one thread
    results = {
        "machine": {"time_utc": "now", "cpu": "cpu", "usable_cores": 2, "cpu_flags": {"avx2": True},
                    "onnxruntime": "1", "numpy": "2", "python": "3"},
        "seconds": 1.0, "model": "m.onnx", "model_bytes": 10, "model_sha256": "ab", "score_threshold": 0.3,
        "nms_threshold": 0.45, "iou_threshold": 0.5, "threads": [1], "reference": {
            "coco-mini": {"recall": 0.71, "precision": 0.71}, "lspet": {"recall": 0.81, "recall_tight": 0.74},
            "ms_per_image_416_idle": 48.0},
        "command": "python benchmarks/bench_detector.py",
        "speed": {"images": 2, "blocks": 2, "image_shapes": [[240, 320]], "rows": [
            {"input_size": 320, "load": "idle", "threads": 1, "spinning": False, **t}]},
    }
    text = "\n".join(_markdown(results))
    assert "| 320 | idle | 1 | off |" in text and "other load (cores)" in text and "2 blocks" in text
    assert "`python benchmarks/bench_detector.py`" in text
    assert "320x240" in text


def test_busy_core_process_is_gone_afterwards() -> None:
    import os

    with busy_core() as pid:
        os.kill(pid, 0)  # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_pick_block_prefers_undisturbed_blocks_then_the_median() -> None:
    runs = [{"ms_median": 30.0, "other_cores": 1.2}, {"ms_median": 12.0, "other_cores": 0.02},
            {"ms_median": 20.0, "other_cores": 0.0}, {"ms_median": 15.0, "other_cores": 0.05}]
    assert pick_block(runs)["ms_median"] == 15.0  # of 12 / 15 / 20 (clean), the median; 30 was disturbed
    assert pick_block(runs[:1])["ms_median"] == 30.0
    assert pick_block([{"ms_median": 9.0, "other_cores": None}, {"ms_median": 7.0, "other_cores": None}])[
        "ms_median"] == 7.0
