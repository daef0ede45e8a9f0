"""The ``tpose`` command line, in-process: every subcommand on real files with tiny weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tpose
from tpose.cli import main
from tpose.models.checkpoint import save_weights

from .conftest import COCO_DET, REPO, needs_coco_det, tiny_model

DEMO = REPO / "docs" / "demo"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    model = tiny_model("transpose_r_a3", num_keypoints=14, input_size=(64, 48))
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(model, path, extra_metadata={"keypoint_set": "lsp14"})
    return path


def test_info_and_weights_tables(capsys):
    assert main(["info", "transpose_r_a4", "--input-size", "128x96", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "5,985,105" in out and "16 x 12 = 192" in out and "coco-256x192" in out
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for name in ("transpose_r_a3", "transpose_h_a6", "lsp-mpii-128x96"):
        assert name in out


def test_info_rejects_a_bad_size(capsys):
    assert main(["info", "transpose_h_s", "--input-size", "250x190", "--no-memory"]) == 2
    assert "multiples of 16" in capsys.readouterr().err


def test_predict_writes_json_and_images_and_reports_a_corrupt_file(tiny_weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((DEMO / "000000000785.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = main(["predict", str(folder), "--weights", str(tiny_weights), "-o", str(out), "--no-progress",
                 "--whole-image"])
    assert code == 1  # something was skipped: reported, the rest finished
    assert "broken.jpg" in capsys.readouterr().err
    record = json.loads((out / "a_pose.json").read_text())
    assert record["keypoint_set"] in ("lsp14", {"name": "lsp14"}) or "persons" in record
    assert len(record["persons"]) == 1 and len(record["persons"][0]["keypoints"]) == 14
    assert (out / "a_pose.jpg").is_file()


def test_predict_with_detector_boxes(tiny_weights, tmp_path):
    out = tmp_path / "out"
    code = main(["predict", str(DEMO / "000000442450.jpg"), "--detections", str(DEMO / "boxes.json"),
                 "--weights", str(tiny_weights), "-o", str(out), "--no-progress"])
    assert code == 0
    record = json.loads((out / "000000442450_pose.json").read_text())
    assert len(record["persons"]) == 2


def test_explain_writes_figures_and_page(tiny_weights, tmp_path):
    out = tmp_path / "ex"
    code = main(["explain", str(DEMO / "000000000785.jpg"), "--boxes", str(DEMO / "boxes.json"), "--weights",
                 str(tiny_weights), "--layers", "all", "--html", str(out / "page.html"), "-o", str(out)])
    assert code == 0
    assert (out / "page.html").stat().st_size > 1000
    assert list(out.glob("dependency_*.png")) and list(out.glob("dependency_*.npy"))


@needs_coco_det
def test_eval_on_real_detector_boxes_says_which_boxes(tmp_path, capsys):
    sample = COCO_DET
    model = tiny_model("transpose_r_a3", input_size=(64, 48))
    weights = tmp_path / "coco.safetensors"
    save_weights(model, weights, extra_metadata={"keypoint_set": "coco17"})
    args = ["eval", "--weights", str(weights), "--data", "coco", "--ann-file", str(sample / "test_coco.json"),
            "--image-dir", str(sample), "--no-progress", "--report", str(tmp_path / "r.json")]
    assert main([*args, "--detections", str(sample / "test_coco_det_AP_H_56.json")]) == 0
    assert "detector boxes" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert "AP" in report["metrics"]
    assert main(args) == 0
    assert "GT boxes" in capsys.readouterr().out


def test_pretrained_by_tag_from_a_local_weights_dir(tmp_path, monkeypatch):
    from tpose.weights.catalog import RELEASED_FILES

    torch.manual_seed(1)
    released = tpose.create_model("transpose_r_a3")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("TPOSE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    torch.save(released.state_dict(), tmp_path / RELEASED_FILES["transpose_r_a3"])
    model = tpose.create_model("transpose_r_a3", weights="coco-256x192")
    for key, value in released.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert "transpose_r_a3" in tpose.list_models(pretrained=True)
    for former in ("checkpoint", "pretrained"):  # the former spellings of weights= are gone
        with pytest.raises(TypeError, match=f"unknown model overrides \\['{former}'\\]"):
            tpose.create_model("transpose_r_a3", **{former: True})


def test_pretrained_offline_without_a_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.delenv("TPOSE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    with pytest.raises(ConnectionError) as err:
        tpose.create_model("transpose_h_s", weights=True)
    text = str(err.value)
    assert "tp_h_32_256x192_enc4_d64_h128_mh1.pth" in text and str(tmp_path / "hub") in text


def test_export_half_safetensors_keeps_metadata_and_loads(tiny_weights, tmp_path, capsys):
    out = tmp_path / "ship" / "tiny_half.safetensors"
    assert main(["export", "--weights", str(tiny_weights), "--format", "safetensors", "--half", "-o", str(out)]) == 0
    assert "float16 storage" in capsys.readouterr().out
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["storage_dtype"] == "float16" and meta["keypoint_set"] == "lsp14"
    assert meta["exported_from"] == str(tiny_weights)
    assert out.stat().st_size < 0.6 * tiny_weights.stat().st_size
    from tpose.models.checkpoint import load_model

    a, b = load_model(tiny_weights).eval(), load_model(out).eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-2)
    assert main(["export", "--weights", str(tiny_weights), "--format", "safetensors"]) != 0
    assert "needs --weights and -o" in capsys.readouterr().err


def test_export_onnx_checked_and_released_layout(tiny_weights, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--weights", str(tiny_weights), "-o", str(out),
                 "--verify-images", str(DEMO / "000000000785.jpg")]) == 0
    assert out.stat().st_size > 10_000 and "checked against PyTorch" in capsys.readouterr().out
    pth = tmp_path / "tiny.pth"
    assert main(["export", "--weights", str(tiny_weights), "--format", "pth", "-o", str(pth)]) == 0
    state = torch.load(pth, weights_only=True)
    assert "pos_embedding" in state and "final_layer.weight" in state
    assert not any(k.startswith("module.") for k in state)
