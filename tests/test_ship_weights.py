"""scripts/ship_weights.py: the gate of issue 22 and the float16 candidate its figures are measured on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tpose.data import LSP14
from tpose.models.checkpoint import load_model, read_metadata, save_weights

from .conftest import tiny_model

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("ship_weights", ROOT / "scripts/ship_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gate_wants_lspet_and_mpii_not_below_and_coco_above_the_floor():
    gate = _script().gate
    old = {"PCK@0.2": 0.6851, "PCK@0.2_mpii": 0.8089, "PCK@0.2_coco": 0.6098}
    assert gate({"PCK@0.2": 0.6851, "PCK@0.2_mpii": 0.81, "PCK@0.2_coco": 0.59}, old, 0.5898) == []
    failed = gate({"PCK@0.2": 0.6838, "PCK@0.2_mpii": 0.8165, "PCK@0.2_coco": 0.5897}, old, 0.5898)
    assert failed == ["PCK@0.2 0.6838 below the shipped 0.6851", "COCO excerpt 0.5897 below the floor 0.5898"]


def test_the_candidate_is_the_float16_file_that_would_ship(tmp_path):
    model = tiny_model(num_keypoints=14, input_size=(64, 48))
    save_weights(model, tmp_path / "best.safetensors", keypoint_set=LSP14,
                 extra_metadata={"epoch": 3, "metrics": {"val_PCK@0.2": 0.5}})
    made = _script().candidate(tmp_path)
    meta = read_metadata(made)
    assert made == tmp_path / "candidate.safetensors"
    assert (meta["storage_dtype"], meta["epoch"], meta["keypoint_set"]) == ("float16", 3, "lsp14")
    assert meta["metrics"] == {"val_PCK@0.2": 0.5}
    for name, value in load_model(made).state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, model.state_dict()[name].half().float()), name
