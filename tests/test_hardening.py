"""No silent failures (issue 19): every wrong input is named with what would fix it, and every batch job says
what it skipped. One test per case; the command-line cases go through the command line."""

from __future__ import annotations

import errno
import json
import os
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import tpose
from tpose.cli import main
from tpose.data.records import PersonRecord
from tpose.engine.train import train
from tpose.inference import PosePredictor, open_source
from tpose.models.checkpoint import save_released_layout, save_weights
from tpose.utils.files import DiskFullError, atomic_write

from .conftest import TINY, tiny_model
from .synthetic import tiny_train_config, write_coco_dataset


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("TPOSE_OFFLINE", "TPOSE_WEIGHTS_DIR", "TPOSE_WEIGHTS_BASE_URL", "TPOSE_DETECTOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny model's weights, a full-size R-A3 in the released .pth layout, its ONNX export and a photo."""
    root = tmp_path_factory.mktemp("hardening")
    out = {"tiny": save_weights(tiny_model(input_size=(64, 48)), root / "tiny.safetensors")}
    torch.manual_seed(0)
    out["r_a3"] = save_released_layout(tpose.create_model("transpose_r_a3"), root / "r_a3.pth")
    from tpose.export import export_onnx

    out["onnx"] = export_onnx(tiny_model(input_size=(64, 48)), root / "tiny_64x48.onnx")
    image = np.full((120, 90, 3), 127, np.uint8)
    cv2.circle(image, (45, 60), 20, (255, 255, 255), -1)
    cv2.imwrite(str(root / "photo.jpg"), image)
    out["photo"] = root / "photo.jpg"
    return out


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """tpose with these arguments; predict/explain without boxes take the whole image (no detector file here)."""
    args = list(argv)
    if args[0] in ("predict", "explain") and "--detections" not in args and "--boxes" not in args:
        args.append("--whole-image")
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- silent or wrong


def test_cli_refuses_weights_of_another_variant(files, capsys, tmp_path) -> None:
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--model", "transpose_r_a4", "--weights",
                        str(files["r_a3"]), "-o", str(tmp_path), "--no-progress")
    assert code == 2
    assert "model 'transpose_r_a4' was asked for, but" in err and "holds transpose_r_a3 weights" in err
    assert "drop --model" in err


def test_a_wrong_file_at_a_cache_path_is_refused(files, capsys, tmp_path, monkeypatch) -> None:
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "tp_r_256x192_enc4_d256_h1024_mh8.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(files["r_a3"].read_bytes())  # R-A3 weights where the R-A4 release file belongs
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", "transpose_r_a4:coco-256x192",
                        "-o", str(tmp_path / "out"), "--no-progress")
    assert code == 2
    assert "are transpose_r_a4 weights, but the file found for them" in err and "holds transpose_r_a3" in err
    assert str(cached) in err


def test_detections_that_match_no_image_fail_and_say_so(files, capsys, tmp_path) -> None:
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [1, 1, 40, 60], "score": 0.9}]))
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", str(files["tiny"]), "--detections",
                        str(dets), "-o", str(tmp_path / "out"), "--no-progress")
    assert code == 1
    assert "no detections for 1 image(s)" in err and "photo.jpg" in err
    assert "none of the 1 image(s) matches an image id of" in err
    numbered = tmp_path / "000000000785.jpg"  # its id is known (785), but the file holds boxes for image 99 only
    numbered.write_bytes(files["photo"].read_bytes())
    code, _, err = _run(capsys, "predict", str(numbered), "--weights", str(files["tiny"]), "--detections", str(dets),
                        "-o", str(tmp_path / "out2"), "--no-progress")
    assert code == 1 and "1 image(s) have no record in" in err and "000000000785.jpg" in err
    assert "none of the 1 image(s) matches an image id of" in err


def test_empty_boxes_of_a_detections_file_are_reported(files, capsys, tmp_path) -> None:
    image = tmp_path / "000000000007.jpg"
    image.write_bytes(files["photo"].read_bytes())
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([
        {"image_id": 7, "category_id": 1, "bbox": [1, 1, 40, 60], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [5, 5, 0, 30], "score": 0.8},
        {"image_id": 7, "category_id": 1, "bbox": [5, 5, 20, -3], "score": 0.7},
    ]))
    code, out, err = _run(capsys, "predict", str(image), "--weights", str(files["tiny"]), "--detections", str(dets),
                          "-o", str(tmp_path / "out"), "--no-progress")
    assert code == 0 and "1 person(s)" in out
    assert "dropped 2 box(es) of zero or negative size" in err and "records 1, 2" in err


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((20, 20, 3), np.uint16), "got dtype uint16"),
        (np.full((20, 20, 3), 2.0, np.float32), r"float images must lie in \[0, 1\], got values in \[2, 2\]"),
        (np.full((20, 20, 3), np.nan, np.float32), "NaN or infinite"),
        (np.zeros((4, 20, 20, 3), np.uint8), "got an array of shape"),
        (np.zeros((20, 20, 2), np.uint8), "got an array of shape"),
        ([[0, 1], [2, 3]], "got a list"),
        (np.zeros((20, 20, 3), np.int64), "got dtype int64"),
    ],
)
def test_predictor_refuses_arrays_it_would_misread(array, match: str) -> None:
    pred = PosePredictor(tiny_model(input_size=(64, 48)), flip_test=False, detector=None)
    with pytest.raises(ValueError, match=match) as info:
        pred.predict(array)
    assert "uint8 [H, W, 3]" in str(info.value) or "[0, 1]" in str(info.value)


def test_predictor_accepts_grey_alpha_floats_and_bgr() -> None:
    pred = PosePredictor(tiny_model(input_size=(64, 48)), flip_test=False, detector=None)
    rgb = np.zeros((40, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red
    base = pred.predict(rgb)[0].keypoints
    np.testing.assert_allclose(pred.predict(rgb.astype(np.float32) / 255.0)[0].keypoints, base, atol=1e-4)
    np.testing.assert_allclose(pred.predict(np.dstack([rgb, np.full((40, 30), 9, np.uint8)]))[0].keypoints, base)
    assert len(pred.predict(rgb[..., 0])) == 1  # grey
    bgr = PosePredictor(tiny_model(input_size=(64, 48)), flip_test=False, channel_order="bgr", detector=None)
    np.testing.assert_allclose(bgr.predict(rgb[..., ::-1].copy())[0].keypoints, base, atol=1e-5)


def test_truncated_video_reports_frames_read_against_the_claimed_count(files, capsys, tmp_path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(8):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    source = open_source(path)
    assert len(source) == 8 and len(list(source)) < 8
    assert "decoding stopped after" in source.skipped[0].reason and "of the 8 frames" in source.skipped[0].reason
    code, out, err = _run(capsys, "predict", str(path), "--weights", str(files["tiny"]), "-o", str(tmp_path / "o"),
                          "--no-progress", "--no-images")
    assert code == 1 and "frames the file claims" in err


def test_a_box_outside_the_image_and_a_tiny_image_give_no_person_and_a_warning() -> None:
    pred = PosePredictor(tiny_model(input_size=(64, 48)), flip_test=False, detector=None)
    image = np.zeros((50, 40, 3), np.uint8)
    with pytest.warns(UserWarning, match=r"box 1 \[100.0, 100.0, 20.0, 20.0\] lies wholly outside the 40x50 image"):
        persons = pred.predict(image, [[5, 5, 20, 30], [100, 100, 20, 20]])
    assert len(persons) == 1
    with pytest.warns(UserWarning, match="the image is 1x1 pixels, too small to show a person"):
        assert pred.predict(np.zeros((1, 1, 3), np.uint8)) == []


# ----------------------------------------------------------------------------- tracebacks -> messages


def test_resuming_a_run_of_another_architecture_says_what_differs(tmp_path) -> None:
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    cfg = tiny_train_config(data, tmp_path / "run", epochs=1)
    train(cfg, progress=False)
    other = tiny_train_config(data, tmp_path / "run", epochs=2)
    other["model_overrides"]["d_model"] = 48
    with pytest.raises(ValueError, match=r"written by a run of another architecture \(model_overrides.d_model: 32 in "
                                         r"the checkpoint, 48 now\).*output_dir=.*--no-resume"):
        train(other, progress=False)


def test_disk_full_while_saving_names_the_file_and_keeps_the_last_checkpoint(tmp_path, monkeypatch) -> None:
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    train(tiny_train_config(data, tmp_path / "run", epochs=1), progress=False)
    ckpt = tmp_path / "run" / "last.ckpt"
    before = ckpt.read_bytes()
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        if str(f).endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError, match=r"no space left on the device while writing .*last.ckpt; the previous "
                                            r"last.ckpt is unchanged"):
        train(tiny_train_config(data, tmp_path / "run", epochs=2), progress=False)
    assert ckpt.read_bytes() == before
    assert not [p for p in ckpt.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_or_truncated_onnx_is_named(files, tmp_path, capsys) -> None:
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(files["onnx"].read_bytes()[:2000])
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", str(bad), "-o", str(tmp_path / "o"),
                        "--no-progress")
    assert code == 2 and "cut.onnx: ONNX Runtime cannot load this file (corrupt, truncated or not an ONNX" in err
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", str(empty), "-o", str(tmp_path / "o"))
    assert code == 2 and "empty.onnx: the file is empty" in err


def test_input_size_other_than_a_fixed_onnx_export_is_explained(files, tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", str(files["onnx"]), "--input-size",
                        "128x96", "-o", str(tmp_path / "o"), "--no-progress")
    assert code == 2 and "was exported for 64x48 inputs, not 128x96" in err
    assert "tpose export --input-size 128x96" in err


def test_zero_input_size_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", "x.jpg", "--input-size", "0x0"])
    assert info.value.code == 2 and "expected a positive HxW such as 256x192, got '0x0'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_says_so(files, tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", str(files["tiny"]), "--device", "cuda",
                        "-o", str(tmp_path / "o"))
    assert code == 2 and "--device cuda:" in err and "use --device cpu" in err


def test_float64_and_half_inputs_are_converted() -> None:
    model = tiny_model(input_size=(64, 48))
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(model(x.double()), ref)
        torch.testing.assert_close(model(x.half()), ref, atol=2e-2, rtol=0)
        with pytest.raises(TypeError, match="expects a float tensor"):
            model(torch.zeros(1, 3, 64, 48, dtype=torch.uint8))


# ----------------------------------------------------------------------------- misleading messages


def test_onnx_file_with_the_torch_backend_says_to_use_onnxruntime(files, tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "predict", str(files["photo"]), "--weights", str(files["onnx"]), "--backend", "torch",
                        "-o", str(tmp_path / "o"))
    assert code == 2 and "is an ONNX model: run it with --backend onnxruntime" in err
    code, out, _ = _run(capsys, "predict", str(files["photo"]), "--weights", str(files["onnx"]), "-o",
                        str(tmp_path / "o2"), "--no-progress")  # the suffix picks the backend
    assert code == 0 and "1 person(s)" in out


def test_explain_with_an_onnx_export_without_attention_says_what_to_do(files, tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "explain", str(files["photo"]), "--weights", str(files["onnx"]), "-o", str(tmp_path))
    assert code == 2 and "has no attention outputs, which explain needs" in err and "tpose export --attention" in err


def test_a_video_among_images_is_skipped_as_a_video(files, capsys, tmp_path) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    code, out, err = _run(capsys, "predict", str(files["photo"]), str(clip), "--weights", str(files["tiny"]), "-o",
                          str(tmp_path / "o"), "--no-progress")
    assert code == 1 and "processed 1 file(s)" in out
    assert "is a video: videos are predicted one per call" in err and "cannot decode" not in err


def test_evaluation_set_with_no_usable_person_names_the_filters(files, tmp_path, capsys) -> None:
    data = write_coco_dataset(tmp_path / "coco", num_images=2)
    ann = json.loads(Path(data["ann_file"]).read_text())
    for a in ann["annotations"]:
        a["iscrowd"] = 1
    Path(data["ann_file"]).write_text(json.dumps(ann))
    code, _, err = _run(capsys, "eval", "--weights", str(files["tiny"]), "--data", "coco", "--ann-file",
                        data["ann_file"], "--image-dir", data["image_dir"], "--no-progress")
    assert code == 2 and "no annotated person passed the filters" in err and "2 crowd" in err


def test_train_without_a_config_says_what_to_give(capsys) -> None:
    code, _, err = _run(capsys, "train")
    assert code == 2 and "give a training config, e.g. `tpose train configs/" in err and "are optional" in err


# ----------------------------------------------------------------------------- small


def test_metrics_keep_one_record_per_epoch_after_kills(tmp_path) -> None:
    """A run killed before its first checkpoint left its epoch-1 record behind; the rerun must not add another,
    and a record cut short by a kill is ignored."""
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 9.0}) + "\n" + '{"epoch": 1, "tr')
    result = train(tiny_train_config(data, out, epochs=1), progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["train_loss"] != 9.0
    assert [r["epoch"] for r in result.history] == [1]
    assert (out / "metrics.csv").read_text().count("\n") == 2  # header + one row


def test_files_are_written_with_the_users_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        weights = save_weights(tiny_model(input_size=(64, 48)), tmp_path / "w.safetensors")
        ckpt = atomic_write(tmp_path / "state.ckpt", lambda tmp: torch.save({"a": 1}, tmp))
    finally:
        os.umask(old)
    for path in (weights, weights.with_suffix(".json"), ckpt):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_save_weights_and_load_model_are_importable_from_tpose(tmp_path) -> None:
    path = tpose.save_weights(tiny_model(input_size=(64, 48)), tmp_path / "m.safetensors")
    assert tpose.load_model(path).config.d_model == TINY["d_model"]


def test_folder_progress_bar_counts_skipped_files(files, tmp_path, capsys) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(files["photo"].read_bytes())
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    code = main(["predict", str(folder), "--weights", str(files["tiny"]), "-o", str(tmp_path / "o"), "--whole-image"])
    err = capsys.readouterr().err
    assert code == 1 and "2/2" in err and "skipped" in err and "b.jpg" in err


def test_export_check_says_which_real_images_it_used(files, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "export", "--weights", str(files["tiny"]))
    assert code == 0 and (tmp_path / "tiny_64x48.onnx").is_file()
    assert "real image(s) shipped with tpose" in out


def test_records_flags_are_cocos() -> None:
    rec = PersonRecord("x.jpg", [0, 0, 10, 10], np.array([[1, 1, 2], [2, 2, 1], [0, 0, 0]]), 1)
    assert rec.visible.tolist() == [True, True, False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rec.num_keypoints == 3
