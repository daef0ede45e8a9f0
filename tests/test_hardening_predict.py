"""Hardening round two (issue 26, points 4 and 6): no silent nonsense in prediction, and what a newcomer met.

Each case goes through the command line (``tpose.cli.main``, or a subprocess where pytest's own warning
capture would hide what the user sees)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import tpose.cli
from tpose.cli import main
from tpose.inference.draw import MIN_DRAWN_PERSON_SCORE, draw_poses, worth_drawing
from tpose.inference.predictor import PersonPose
from tpose.inference.tracking import Tracker

from .conftest import REPO

PHOTO = REPO / "docs" / "demo" / "000000000785.jpg"  # 640x425, COCO image id 785


pytestmark = pytest.mark.usefixtures("offline_weights")


@pytest.fixture(scope="module")
def tiny(tiny_weights) -> Path:
    return tiny_weights


def _dets(path: Path, *records: dict) -> Path:
    path.write_text(json.dumps(list(records)))
    return path


def _usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- point 4


def test_boxes_that_fit_as_corners_warn_in_one_clean_line(tiny, tmp_path) -> None:
    dets = _dets(tmp_path / "xyxy.json", {"image_id": 785, "category_id": 1, "bbox": [277, 46, 502, 379],
                                          "score": 0.9})
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "TPOSE_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "tpose.cli", "predict", str(PHOTO), "--weights", str(tiny),
                           "--detections", str(dets), "-o", str(tmp_path / "out"), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if "x1,y1,x2,y2" in ln]
    assert len(warned) == 1 and warned[0].startswith("tpose: warning: ")
    assert "139 px" in warned[0] and "COCO boxes are x,y,w,h" in warned[0]
    assert "warnings.warn" not in proc.stderr and "UserWarning" not in proc.stderr  # no source line


def test_boxes_inside_the_image_do_not_warn(tiny, tmp_path, capsys) -> None:
    dets = _dets(tmp_path / "xywh.json", {"image_id": 785, "category_id": 1, "bbox": [277, 46, 225, 334],
                                          "score": 0.9})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", str(PHOTO), "--weights", str(tiny), "--detections", str(dets), "-o",
                     str(tmp_path / "out"), "--no-progress"]) == 0
    assert not [w for w in caught if "x1,y1,x2,y2" in str(w.message)]


@pytest.mark.parametrize("value", ["-1", "5", "1.5"])
def test_nms_outside_0_1_is_a_usage_error(value, capsys) -> None:
    err = _usage_error(capsys, ["predict", str(PHOTO), "--nms", value])
    assert f"--nms must lie in 0..1, got {value}" in err


@pytest.mark.parametrize("flag", ["--draw-threshold", "--min-box-score", "--det-threshold"])
def test_score_thresholds_outside_0_1_are_usage_errors(flag, capsys) -> None:
    assert f"{flag} must lie in 0..1" in _usage_error(capsys, ["predict", str(PHOTO), flag, "2"])


@pytest.mark.parametrize("value", ["0", "-3"])
def test_threads_below_one_is_a_usage_error(value, capsys) -> None:
    err = _usage_error(capsys, ["predict", str(PHOTO), "--threads", value])
    assert "argument --threads: must be at least 1" in err
    assert "Traceback" not in err
    assert "must be at least 1" in _usage_error(capsys, ["bench", "--threads", value])


def test_whole_image_with_detections_is_refused(tmp_path, capsys) -> None:
    err = _usage_error(capsys, ["predict", str(PHOTO), "--whole-image", "--detections", str(tmp_path / "d.json")])
    assert "--whole-image and --detections contradict each other" in err


def test_explain_whole_image_with_a_box_is_refused(capsys) -> None:
    err = _usage_error(capsys, ["explain", str(PHOTO), "--whole-image", "--box", "1,2,30,40"])
    assert "--whole-image and --box contradict each other" in err


# ----------------------------------------------------------------------------- point 6


def test_a_sub_folder_of_an_input_folder_is_reported(tiny, tmp_path, capsys) -> None:
    (tmp_path / "in" / "more").mkdir(parents=True)
    (tmp_path / "in" / "a.jpg").write_bytes(PHOTO.read_bytes())
    (tmp_path / "in" / "more" / "b.jpg").write_bytes(PHOTO.read_bytes())
    code = main(["predict", str(tmp_path / "in"), "--weights", str(tiny), "--whole-image", "-o",
                 str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1  # finished, but something was left out
    assert f"skipped {tmp_path / 'in' / 'more'}: a sub-folder with images: not searched" in err
    assert f"give {tmp_path / 'in' / 'more'} as an input of its own" in err


def test_a_folder_whose_images_are_all_in_sub_folders_names_them(tiny, tmp_path, capsys) -> None:
    (tmp_path / "in" / "more").mkdir(parents=True)
    (tmp_path / "in" / "more" / "b.jpg").write_bytes(PHOTO.read_bytes())
    code = main(["predict", str(tmp_path / "in"), "--weights", str(tiny), "--whole-image", "-o",
                 str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert "its sub-folder(s) more do: give them as inputs" in capsys.readouterr().err


def test_the_video_summary_counts_frames(tiny, tmp_path, capsys) -> None:
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    code = main(["predict", str(tmp_path / "clip.avi"), "--weights", str(tiny), "--whole-image", "-o",
                 str(tmp_path / "out"), "--no-progress", "--no-images"])
    out = capsys.readouterr().out
    assert code == 0
    assert "processed 5 frame(s)" in out and "file(s)" not in out


def test_the_progress_bar_draws_its_last_line_once(tiny, tmp_path, capsys) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / "in" / name).write_bytes(PHOTO.read_bytes())
    assert main(["predict", str(tmp_path / "in"), "--weights", str(tiny), "--whole-image", "-o",
                 str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count("3/3") == 1, err


def test_explain_help_says_the_detector_finds_the_boxes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the detector's boxes" in text and "default whole image" not in text


def test_the_weights_table_labels_both_defaults(capsys) -> None:
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "transpose_r_a4 (used without --weights)" in out and "transpose_r_a4 (weights=True)" in out
    assert "(default)" not in out
    assert "used without --weights: what every tpose command without --weights uses" in out


def test_training_prints_the_best_metric_rounded(monkeypatch, tmp_path, capsys) -> None:
    done = SimpleNamespace(status="finished", epochs_done=2, output_dir=tmp_path, best_metric=0.14919354838709678,
                           best_epoch=2)
    monkeypatch.setattr(tpose.cli, "train", lambda *a, **k: done)
    assert main(["train", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "best 0.1492 at epoch 2" in out and "0.14919" not in out


def _person(scores: list[float], score: float, track_id: int | None = None) -> PersonPose:
    k = len(scores)
    return PersonPose(keypoints=np.stack([np.linspace(10, 50, k), np.linspace(10, 80, k)], 1).astype(np.float32),
                      scores=np.array(scores, np.float32), box=np.array([5, 5, 60, 90], np.float32),
                      box_score=0.9, score=score, keypoint_names=tuple(f"k{i}" for i in range(k)),
                      track_id=track_id)


def test_low_score_fragments_are_not_drawn() -> None:
    from tpose.data import COCO17

    lone = _person([0.9] + [0.05] * 16, 0.9)  # a lone keypoint on a teacup
    faint = _person([0.5] * 17, MIN_DRAWN_PERSON_SCORE - 0.05)
    real = _person([0.8] * 17, 0.7)
    assert not worth_drawing(lone, 0.3) and not worth_drawing(faint, 0.3) and worth_drawing(real, 0.3)
    assert worth_drawing(_person([0.5] * 17, 0.1, track_id=3), 0.3)  # a tracked walker stays drawn
    blank = np.zeros((100, 100, 3), np.uint8)
    assert draw_poses(blank, [lone, faint], COCO17).max() == 0
    assert draw_poses(blank, [real], COCO17).max() > 0


def test_a_static_low_score_box_loses_its_id() -> None:
    tracker = Tracker(static_frames=5, static_score=0.3, static_motion=0.1)
    sign = np.array([600, 300, 15, 33], np.float32)  # vtest.avi's blue signpost: still, person score ~0.22
    for i in range(8):
        walker = np.array([100 + 12 * i, 200, 40, 90], np.float32)
        still_person = np.array([300, 100, 40, 90], np.float32)  # someone standing: still, but a clear person
        ids = tracker.update(np.stack([sign, walker, still_person]), np.array([0.22, 0.25, 0.6]), frame_index=i)
        if i < 4:
            assert not tracker.static_ids
    assert tracker.static_ids == {ids[0]}
    assert ids[1] not in tracker.static_ids and ids[2] not in tracker.static_ids
    off = Tracker()  # the Tracker's own default: the rule is off
    for i in range(8):
        off.update(sign[None], np.array([0.22]), frame_index=i)
    assert not off.static_ids
