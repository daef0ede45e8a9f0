"""The int8 model shipped beside the shipped weights: it is there, it was made from exactly those weights (the
SHA-256 in its metadata), it passed the real-time accuracy gate, and the README quotes its measured numbers.
When the shipped weights change, these fail until `python scripts/build_shipped_int8.py` is run again."""

from __future__ import annotations

import re

import pytest

from tpose.factory import shipped_weights
from tpose.weights.download import sha256_of
from tpose.weights.int8 import (
    REALTIME_GATE_KEY,
    WEIGHTS_HASH_KEY,
    check_int8,
    find_int8,
    int8_path,
    read_int8_metadata,
)

from .conftest import REPO

pytest.importorskip("onnx")


def test_the_shipped_weights_ship_their_int8_model() -> None:
    weights = shipped_weights()
    assert find_int8(weights) == int8_path(weights), f"{int8_path(weights)} is missing: run the build script"
    assert "weights/*_int8.onnx" in (REPO / "pyproject.toml").read_text()  # package data of the wheel


def test_the_shipped_int8_model_was_made_from_the_shipped_weights() -> None:
    weights = shipped_weights()
    meta = read_int8_metadata(int8_path(weights))
    assert meta.get("precision") == "int8" and meta.get("quantization")
    assert meta.get(WEIGHTS_HASH_KEY) == sha256_of(weights), (
        "the shipped weights changed since their int8 model was built: run python scripts/build_shipped_int8.py")
    check_int8(meta, weights)


def test_the_shipped_int8_model_passed_the_realtime_gate_and_the_readme_says_so() -> None:
    gate = read_int8_metadata(int8_path(shipped_weights()))[REALTIME_GATE_KEY]
    assert gate["passed"] is True and gate["tolerance"] == 0.005
    assert set(gate["loss"]) == {"lspet-val", "mpii-val"}
    assert all(loss <= 0.005 + 1e-12 for loss in gate["loss"].values())
    readme = (REPO / "README.md").read_text()
    for name in gate["loss"]:
        fp32, int8 = gate["pck_fp32"][name], gate["pck_int8"][name]
        row = re.search(rf"\| {re.escape(name)}[^|]*\|[^|]*\| {fp32:.4f} \| {int8:.4f} \|", readme)
        assert row, f"README's int8 table lacks the measured {name} row (fp32 {fp32:.4f}, int8 {int8:.4f})"
