"""Model info: multiply-adds against the published reference, sizes, token grids, peak memory."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import tpose
from tpose.models.complexity import _custom_flops, count_macs, format_info, measure_peak_memory, model_info

from .conftest import TINY, tiny_model

# multiply-adds per image at 256x192 (conv + matmul), from the reference
REFERENCE_GMACS = {
    "transpose_r_a3": 5.41,
    "transpose_r_a4": 6.32,
    "transpose_h_s": 9.93,
    "transpose_h_a4": 17.21,
    "transpose_h_a6": 21.28,
}


def test_macs_match_reference_within_two_percent() -> None:
    for name, gmacs in REFERENCE_GMACS.items():
        macs = count_macs(tpose.models.get_config(name))
        assert macs["total"] / 1e9 == pytest.approx(gmacs, rel=0.02), name
        assert macs["total"] == macs["backbone"] + macs["reduce"] + macs["encoder"] + macs["head"]
        assert min(macs["backbone"], macs["encoder"], macs["head"]) > 0


def test_transposed_conv_counted_per_input_pixel() -> None:
    """The R deconvolution costs in_pixels * Cin * Cout * 16, not 4x that (the published error)."""
    config = tpose.models.get_config("transpose_r_a3", **TINY)
    head = count_macs(config, (64, 48))["head"]
    deconv = (8 * 6) * 32 * 256 * 16
    final = (16 * 12) * 256 * 17
    assert head == deconv + final


def test_encoder_macs_include_attention() -> None:
    config = tpose.models.get_config("transpose_r_a3", **TINY)
    tokens, d, ffn = 8 * 6, 32, 64
    projections = tokens * d * 3 * d + tokens * d * d + 2 * tokens * d * ffn
    attention = 2 * tokens * tokens * d  # QK^T and AV over all heads
    assert count_macs(config, (64, 48))["encoder"] == projections + attention


def test_real_cpu_forward_counts_the_same() -> None:
    """On CPU the fused attention kernel runs; our formula for it gives the meta-device count."""
    model = tiny_model()
    counter = FlopCounterMode(display=False, custom_mapping=_custom_flops())
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 64, 48))
    assert counter.get_total_flops() // 2 == count_macs(model, (64, 48))["total"]


@pytest.mark.parametrize(
    ("name", "grid", "total", "trainable"),
    [("transpose_r_a4", (32, 24), 5_985_105, 5_788_497), ("transpose_h_a4", (64, 48), 17_306_129, 17_011_217)],
)
def test_info_without_memory(name, grid, total, trainable) -> None:
    info = model_info(name, memory=False)
    assert info["token_grid"] == grid and info["tokens"] == grid[0] * grid[1]
    assert info["parameters"] == total and info["trainable_parameters"] == trainable
    assert info["heatmap_size"] == (64, 48)
    assert "peak_memory_bytes" not in info


def test_info_at_other_size_and_bad_size() -> None:
    info = model_info("transpose_r_a3", input_size=(384, 288), memory=False)
    assert info["token_grid"] == (48, 36) and info["heatmap_size"] == (96, 72)
    assert info["macs"]["total"] > 2.2 * model_info("transpose_r_a3", memory=False)["macs"]["total"]
    with pytest.raises(ValueError, match="multiples of 8"):
        model_info("transpose_r_a3", input_size=(250, 190), memory=False)


def test_peak_memory_is_tracked_and_grows_with_batch() -> None:
    model = tiny_model("transpose_h_s").train()
    one = measure_peak_memory(model, (64, 48), batch=1)
    four = measure_peak_memory(model, (64, 48), batch=4)
    input_bytes = 3 * 64 * 48 * 4
    heatmap_bytes = 17 * 16 * 12 * 4
    stem = 64 * 32 * 24 * 4  # first conv's output
    assert one >= input_bytes + stem + heatmap_bytes
    assert 3 * one < four <= 4 * one + 1024
    assert model.training  # mode restored


def test_info_of_a_model_and_its_table() -> None:
    model = tiny_model("transpose_h_s")
    info = model_info(model, input_size=(64, 48))
    assert info["name"] == "custom" and info["peak_memory_bytes"] > 0
    assert info["memory_device"] == "cpu" and "dispatch" in info["memory_method"]
    text = format_info(info)
    for row in ("parameters", "multiply-adds", "tokens", "16 x 12 = 192", "peak forward memory", "MiB"):
        assert row in text
    assert model_info(tpose.create_model("transpose_r_a3"), memory=False)["name"] == "transpose_r_a3"
