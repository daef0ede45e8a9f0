"""``tpose export --int8`` (issue 16): calibration data is required and named, the int8 file is written next to
the fp32 one with its PCK gate, and the predictor runs it on ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tpose.cli import main
from tpose.inference import PosePredictor
from tpose.models.checkpoint import save_weights
from tpose.models.onnx_model import OnnxPoseModel

from .conftest import tiny_model
from .synthetic import write_coco_dataset


def test_export_int8_needs_calibration_data(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    weights = save_weights(tiny_model(input_size=(64, 48)), tmp_path / "tiny.safetensors")
    assert main(["export", "--weights", str(weights), "--int8"]) == 2
    err = capsys.readouterr().err
    assert "--int8 needs --calibration" in err and "training data only" in err
    assert not list(tmp_path.glob("*.onnx"))  # refused before exporting anything


def test_export_int8_writes_a_gated_int8_file_the_predictor_runs(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    weights = save_weights(tiny_model(input_size=(64, 48)), tmp_path / "tiny.safetensors")
    train = write_coco_dataset(tmp_path / "train", num_images=6, seed=1)
    val = write_coco_dataset(tmp_path / "val", num_images=4, seed=2)
    data = tmp_path / "int8.yaml"
    data.write_text(yaml.safe_dump({"validation": [{"type": "coco", "name": "val", **val}]}))
    code = main(["export", "--weights", str(weights), "--int8", "--calibration", train["image_dir"],
                 "--validation", str(data), "--calibration-count", "6", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    int8 = tmp_path / "tiny_64x48_int8.onnx"
    assert int8.is_file() and (tmp_path / "tiny_64x48.onnx").is_file()
    model = OnnxPoseModel(int8)
    meta = model.metadata
    assert meta.get("precision") == "int8" and model.quantized
    quant = meta["quantization"]
    assert "calibration" in json.dumps(quant) and "val" in json.dumps(quant)
    persons = PosePredictor(weights=str(int8), detector=None).predict(str(Path(val["image_dir"]) / "000000000001.jpg"))
    assert len(persons) == 1 and persons[0].keypoints.shape == (17, 2)
