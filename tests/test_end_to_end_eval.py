"""End-to-end PCK (issue 15): persons the predictor finds are matched to the annotated ones by box score at
IoU >= 0.5, a missed person scores 0; the real path runs on LSPET images with the real detector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tpose.cli import main
from tpose.data.keypoint_sets import get_keypoint_set
from tpose.data.records import VISIBLE, PersonRecord
from tpose.inference.end_to_end import evaluate_detected, match_by_score
from tpose.inference.predictor import PersonPose
from tpose.utils.boxes import enlarge_box

from .conftest import DETECTOR, LSPET, needs_detector, needs_lspet

LSP14 = get_keypoint_set("lsp14")


def test_matching_takes_the_most_confident_detection_first_and_needs_iou_half() -> None:
    targets = np.array([[0, 0, 10, 10], [100, 100, 10, 10]], float)
    found = np.array([[1, 1, 10, 10],      # IoU 0.68 with target 0, score 0.5
                      [0, 0, 10, 10],      # exact on target 0, but scores lower
                      [104, 104, 10, 10],  # IoU 0.22 with target 1: below the threshold
                      [50, 50, 10, 10]])   # overlaps nothing
    match = match_by_score(found, np.array([0.5, 0.4, 0.9, 0.8]), targets)
    assert match == {0: 0}
    assert match_by_score(np.zeros((0, 4)), np.zeros(0), targets) == {}
    assert match_by_score(found, np.ones(4), np.zeros((0, 4))) == {}


def test_enlarge_box_keeps_the_centre() -> None:
    np.testing.assert_allclose(enlarge_box(np.array([10, 20, 10, 20]), 1.2), [9, 18, 12, 24])


class _FakePredictor:
    """Finds the persons of a scripted list per image, keypoints given."""

    keypoint_set = LSP14

    def __init__(self, found: dict[str, list[PersonPose]]) -> None:
        self.found = found

    def predict(self, path, boxes=None, box_scores=None) -> list[PersonPose]:
        if path == "broken.jpg":
            raise ValueError("cannot decode image (corrupt or not an image)")
        return self.found.get(path, [])


def _person(x: float, y: float, size: float = 100.0) -> np.ndarray:
    kpts = np.zeros((14, 3), np.float32)
    kpts[:, 0] = x + np.linspace(0, size, 14)
    kpts[:, 1] = y + np.linspace(0, size, 14)
    kpts[:, 2] = VISIBLE
    return kpts


def test_a_missed_person_scores_zero_and_a_found_one_its_pck() -> None:
    a, b, c = _person(0, 0), _person(300, 0), _person(0, 0)
    records = [PersonRecord("one.jpg", [0, 0, 100, 100], a, 1), PersonRecord("one.jpg", [300, 0, 100, 100], b, 1),
               PersonRecord("broken.jpg", [0, 0, 100, 100], c, 2)]
    wrong = a[:, :2].copy()
    wrong[:7] += 50  # 7 of 14 joints off by 70 px (> 0.2 x 100)
    found = {"one.jpg": [PersonPose(wrong, np.ones(14), np.array([0, 0, 100, 100], float), box_score=0.9),
                         PersonPose(b[:, :2] + 1, np.ones(14), np.array([250, 200, 50, 50], float), box_score=0.8)]}
    report = evaluate_detected(_FakePredictor(found), records, LSP14, progress=False)
    assert report.num_persons == 3 and report.num_matched == 1 and report.recall == pytest.approx(1 / 3)
    assert report.matched_pck == pytest.approx(0.5)          # the found person: half its joints right
    assert report.pck == pytest.approx(7 / 42)               # the two others count 0 on all 14 joints
    assert report.num_images == 2 and report.detections_per_image == pytest.approx(1.0)
    assert len(report.skipped) == 1 and "broken.jpg" in report.skipped[0]
    assert "end-to-end PCK@0.2 = 0.1667" in report.summary()


def test_joint_subset_and_names_shared_with_another_keypoint_set() -> None:
    coco = get_keypoint_set("coco17")
    kpts = np.zeros((17, 3), np.float32)
    lsp = _person(0, 0)
    for i, name in enumerate(LSP14.names):
        if name in coco.names:
            kpts[coco.names.index(name)] = lsp[i]
    rec = PersonRecord("p.jpg", [0, 0, 100, 100], kpts, 1)
    found = {"p.jpg": [PersonPose(lsp[:, :2], np.ones(14), np.array([0, 0, 100, 100], float))]}
    report = evaluate_detected(_FakePredictor(found), [rec], coco, joint_subset=["left_wrist", "right_knee"],
                               progress=False)
    assert list(report.per_joint_pck) == ["left_wrist", "right_knee"] and report.pck == 1.0


@needs_lspet
@needs_detector
def test_tpose_eval_with_the_detector_on_real_photos(tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    code = main(["eval", "--data", "lspet", "--root", str(LSPET), "--first", "9001", "--last", "9006",
                 "--detector", str(DETECTOR), "--limbs", "--no-flip", "--report", str(out), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "end-to-end PCK@0.2" in text and "matched at IoU >= 0.5" in text
    report = json.loads(out.read_text())
    assert report["num_persons"] == 6 and report["num_images"] == 6 and report["gt_box_scale"] == 1.2
    assert 0 < report["metrics"]["recall"] <= 1
    # the end-to-end number can only lose to the found persons' own PCK
    assert report["metrics"]["PCK@0.2"] <= report["metrics"]["PCK@0.2 of matched"] + 1e-9
    assert Path(report["detector"]) == DETECTOR


def test_detector_and_a_detections_file_are_exclusive(capsys) -> None:
    code = main(["eval", "--data", "coco", "--ann-file", "a.json", "--image-dir", ".", "--detector",
                 "--detections", "d.json"])
    assert code == 2
    assert "--detector scores PCK of the persons the predictor finds" in capsys.readouterr().err
