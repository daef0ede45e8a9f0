"""Hardening round two (issue 26, point 5): every message names the fix; no raw ``[Errno N] ...`` reaches the
user, and nothing is blamed on the wrong cause. Each case goes through the command line."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path

import pytest

from tpose.cli import main
from tpose.utils.files import DiskFullError
from tpose.utils.oserrors import describe_os_error

from .conftest import REPO
from .synthetic import tiny_train_config, write_coco_dataset

PHOTO = REPO / "docs" / "demo" / "000000000785.jpg"


pytestmark = pytest.mark.usefixtures("offline_weights")


@pytest.fixture(scope="module")
def tiny(tiny_weights) -> Path:
    return tiny_weights


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody here may write into: a chmod 500 folder, or for root (who writes anywhere) /sys/fs."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    folder = Path("/sys/fs")
    probe = folder / f"tpose-{uuid.uuid4().hex[:6]}"
    try:
        probe.mkdir()
    except OSError:
        yield folder
        return
    probe.rmdir()
    pytest.skip("no read-only folder to test with (root, and /sys/fs is writable)")


def _error(capsys, argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "[Errno" not in err and "Traceback" not in err, err
    return err


def test_a_read_only_output_folder_names_it_and_the_flag(tiny, read_only, capsys) -> None:
    out = read_only / "out"
    err = _error(capsys, ["predict", str(PHOTO), "--weights", str(tiny), "--whole-image", "-o", str(out),
                          "--no-progress"])
    assert f"tpose predict: error: {read_only}" in err and "give -o a folder you can write to" in err


def test_an_output_path_inside_a_file_says_so(tiny, tmp_path, capsys) -> None:
    err = _error(capsys, ["predict", str(PHOTO), "--weights", str(tiny), "--whole-image", "-o",
                          str(PHOTO / "out"), "--no-progress"])
    assert "a part of the path is a file, not a folder: give -o a path that is not inside a file" in err


@pytest.mark.parametrize("fmt", ["onnx", "safetensors", "pth"])
def test_export_into_a_read_only_folder(fmt, tiny, read_only, capsys) -> None:
    target = read_only / f"x.{fmt}"
    err = _error(capsys, ["export", "--weights", str(tiny), "--format", fmt, "-o", str(target), "--no-verify"])
    assert str(target) in err and "give -o a" in err


def test_explain_html_into_a_read_only_folder(tiny, read_only, tmp_path, capsys) -> None:
    err = _error(capsys, ["explain", str(PHOTO), "--weights", str(tiny), "--whole-image", "-o",
                          str(tmp_path / "ex"), "--html", str(read_only / "x.html"), "--no-positions"])
    assert str(read_only / "x.html") in err and "give --html a" in err


def test_a_truncated_safetensors_file_says_so(tiny, tmp_path, capsys) -> None:
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    err = _error(capsys, ["predict", str(PHOTO), "--weights", str(cut), "--whole-image", "-o", str(tmp_path / "o")])
    assert f"{cut}: the file is truncated or not a safetensors file" in err
    assert "export or download it again" in err


def test_an_unwritable_weights_cache_names_torch_home(read_only, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("TPOSE_OFFLINE")  # the cache is checked before any connection is tried
    monkeypatch.setenv("TORCH_HOME", str(read_only / "torch"))
    err = _error(capsys, ["predict", str(PHOTO), "--weights", "transpose_r_a3:coco-256x192", "--whole-image",
                          "-o", str(tmp_path / "o")])
    assert "the weights cache cannot be written" in err and "set TORCH_HOME to a folder you can write to" in err


def test_detections_of_another_category_are_not_blamed_on_image_ids(tiny, tmp_path, capsys) -> None:
    dets = tmp_path / "cars.json"
    dets.write_text(json.dumps([{"image_id": 785, "category_id": 3, "bbox": [277, 46, 225, 334], "score": 0.9}]))
    err = _error(capsys, ["predict", str(PHOTO), "--weights", str(tiny), "--detections", str(dets), "-o",
                          str(tmp_path / "o"), "--no-progress"])
    assert "1 of category_id 3, which is not a person (category_id 1): give person detections" in err
    assert "image id" not in err


def test_a_reversed_first_last_range_says_reversed(tiny, tmp_path, capsys) -> None:
    err = _error(capsys, ["eval", "--weights", str(tiny), "--data", "lspet", "--root", str(tmp_path),
                          "--first", "10", "--last", "5", "--no-progress"])
    assert "--first 10 comes after --last 5" in err and "--first 5 --last 10" in err and "outside" not in err


def test_a_folder_given_as_a_file(tiny, tmp_path, capsys) -> None:
    err = _error(capsys, ["predict", str(PHOTO), "--weights", str(tiny), "--detections", str(tmp_path), "-o",
                          str(tmp_path / "o"), "--no-progress"])
    assert f"{tmp_path}: is a folder, not a file: give --detections a file" in err
    err = _error(capsys, ["predict", str(PHOTO), "--weights", str(tmp_path), "--whole-image"])
    assert f"{tmp_path} is a folder: give the weights file in it" in err


def test_a_training_output_dir_that_cannot_be_written(read_only, tmp_path, capsys) -> None:
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(tiny_train_config(data, read_only / "run", epochs=1)))  # JSON is YAML
    err = _error(capsys, ["train", str(config), "--no-progress"])
    assert str(read_only) in err and "set output_dir in the config, or override it" in err


def test_os_errors_read_as_one_line_with_the_fix() -> None:
    full = DiskFullError(errno.ENOSPC, "no space left on the device while writing /x/y.ckpt; free some space")
    assert describe_os_error(full) == "no space left on the device while writing /x/y.ckpt; free some space"
    denied = PermissionError(errno.EACCES, "Permission denied", "/x/out")
    assert describe_os_error(denied) == "/x/out: permission denied: choose a folder you can write to, or change " \
                                        "its permissions"
    assert describe_os_error(denied, "give -o another folder").endswith(": give -o another folder")
    assert describe_os_error(FileNotFoundError("/x/a.json: no such file")) == "/x/a.json: no such file"
