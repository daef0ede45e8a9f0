"""Nothing lost by ``tpose predict`` (issue 26, point 1): same-named inputs keep apart, Ctrl-C keeps what was
done, and a second run into the input folder leaves tpose's own drawings alone. Through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpose.cli import main
from tpose.inference import predict_job
from tpose.inference.predict_job import is_tpose_output
from tpose.models.checkpoint import save_weights

from .conftest import tiny_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_weights(tiny_model(input_size=(64, 48)), tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (60, 45, 3), dtype=np.uint8))
    return path


def _predict(capsys, weights: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *argv, "--weights", str(weights), "--whole-image", "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_same_named_inputs_from_two_folders_keep_both_outputs(weights, tmp_path, capsys) -> None:
    a, b = _photo(tmp_path / "a" / "photo.jpg", 1), _photo(tmp_path / "b" / "photo.jpg", 2)
    out = tmp_path / "out"
    code, stdout, err = _predict(capsys, weights, str(a), str(b), "-o", str(out))
    assert code == 0 and "processed 2 file(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["a__photo_pose.jpg", "a__photo_pose.json",
                                                     "b__photo_pose.jpg", "b__photo_pose.json"]
    assert "2 input(s) share their name" in err and "a__photo_pose.*" in err
    sizes = {json.loads((out / f"{k}__photo_pose.json").read_text())["size"]["width"] for k in "ab"}
    assert sizes == {45}


def test_same_stem_other_extension_and_the_same_file_twice(weights, tmp_path, capsys) -> None:
    jpg, png = _photo(tmp_path / "in" / "photo.jpg", 1), _photo(tmp_path / "in" / "photo.png", 2)
    code, _, _ = _predict(capsys, weights, str(jpg), str(png), str(jpg), "-o", str(tmp_path / "out"))
    names = sorted(p.name for p in (tmp_path / "out").glob("*.jpg"))
    assert code == 0 and names == ["photo_jpg_2_pose.jpg", "photo_jpg_pose.jpg", "photo_png_pose.jpg"]


def test_predicting_into_the_input_folder_twice_skips_only_tposes_own_drawings(weights, tmp_path, capsys) -> None:
    folder = tmp_path / "shots"
    _photo(folder / "run.jpg", 1)
    _photo(folder / "mine_pose.jpg", 2)  # the user's own file that happens to end in _pose
    code, stdout, _ = _predict(capsys, weights, str(folder), "-o", str(folder))
    assert code == 0 and "processed 2 file(s)" in stdout
    assert is_tpose_output(folder / "run_pose.jpg") and not is_tpose_output(folder / "mine_pose.jpg")
    assert cv2.imread(str(folder / "run_pose.jpg")) is not None  # the marked JPEG still reads everywhere
    code, stdout, err = _predict(capsys, weights, str(folder), "-o", str(folder))
    assert code == 0 and "processed 2 file(s)" in stdout
    assert "left out 2 image(s) that tpose predict drew earlier" in err
    assert not list(folder.glob("*_pose_pose_pose*"))
    assert sorted(p.name for p in folder.glob("*.jpg")) == ["mine_pose.jpg", "mine_pose_pose.jpg", "run.jpg",
                                                           "run_pose.jpg"]
    code, _, err = _predict(capsys, weights, str(folder / "run_pose.jpg"), str(folder / "mine_pose_pose.jpg"),
                            "-o", str(tmp_path / "o"))
    assert code == 2 and "was drawn by tpose predict" in err and "original images" in err


def test_an_output_never_overwrites_an_input(weights, tmp_path, capsys) -> None:
    """``x.jpg`` and the user's ``x_pose.jpg`` predicted into their own folder: x's drawing must go elsewhere."""
    folder = tmp_path / "in"
    _photo(folder / "x.jpg", 1)
    users = _photo(folder / "x_pose.jpg", 2).read_bytes()
    code, _, err = _predict(capsys, weights, str(folder), "-o", str(folder))
    assert code == 0 and (folder / "x_pose.jpg").read_bytes() == users
    assert (folder / "x_2_pose.jpg").is_file() and (folder / "x_pose_pose.jpg").is_file()
    assert "x.jpg -> x_2_pose.*" in err


def _clip(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 64))
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (64, 48, 3), dtype=np.uint8))
    writer.release()
    return path


def test_ctrl_c_during_a_video_keeps_the_json_of_the_frames_done(weights, tmp_path, capsys, monkeypatch) -> None:
    clip = _clip(tmp_path / "clip.avi", 12)
    drawn = predict_job.draw_poses
    calls = []

    def draw_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:  # Ctrl-C while frame 7 is being handled
            raise KeyboardInterrupt
        return drawn(*args, **kwargs)

    monkeypatch.setattr(predict_job, "draw_poses", draw_then_stop)
    out = tmp_path / "out"
    code, stdout, err = _predict(capsys, weights, str(clip), "-o", str(out), "--batch-size", "1")
    assert code == 130
    record = json.loads((out / "clip_pose.json").read_text())
    assert record["interrupted"] is True and [f["frame"] for f in record["frames"]] == list(range(7))
    assert (out / "clip_pose.mp4").is_file()
    assert "interrupted: the outputs of the 7 frame(s) done are written" in err and "processed 7" in stdout


def test_ctrl_c_during_a_folder_keeps_the_coco_results_of_the_images_done(weights, tmp_path, capsys,
                                                                          monkeypatch) -> None:
    folder = tmp_path / "in"
    for i in range(4):
        _photo(folder / f"{i:012d}.jpg", i)
    drawn = predict_job.draw_poses
    calls = []

    def draw_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return drawn(*args, **kwargs)

    monkeypatch.setattr(predict_job, "draw_poses", draw_then_stop)
    out = tmp_path / "out"
    code, _, err = _predict(capsys, weights, str(folder), "-o", str(out), "--batch-size", "1",
                            "--coco-results", str(out / "coco.json"))
    assert code == 130 and "interrupted: the outputs of the 2 image(s) done" in err
    assert {r["image_id"] for r in json.loads((out / "coco.json").read_text())} == {0, 1}
    assert len(list(out.glob("*_pose.json"))) == 2


def test_an_unwritable_output_folder_says_what_to_do(weights, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = _predict(capsys, weights, str(_photo(tmp_path / "p.jpg", 0)), "-o", str(blocker / "out"))
    assert code == 2 and str(blocker / "out") in err and "not a folder" in err and "-o" in err
