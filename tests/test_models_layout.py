"""The registered variants are exact to the released checkpoints: sizes, state-dict layout, sine table."""

from __future__ import annotations

from functools import cache

import pytest
import torch

import tpose
from tpose.models.position_encoding import sine_table

from .conftest import DATA

SPEC = DATA.parent / "spec" / "checkpoint-keys"  # ../shared/spec beside ../shared/data

PARAMS = {
    "transpose_r_a3": 5_195_345,
    "transpose_r_a4": 5_985_105,
    "transpose_h_s": 8_019_281,
    "transpose_h_a4": 17_306_129,
    "transpose_h_a5": 17_380_913,
    "transpose_h_a6": 17_455_697,
}


@cache
def built(name: str) -> torch.nn.Module:
    return tpose.create_model(name)


def test_every_variant_is_listed() -> None:
    assert sorted(PARAMS) == tpose.list_models()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_total_to_the_unit(name: str) -> None:
    model = built(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


def _spec_lines(name: str) -> tuple[dict[str, int], list[str]]:
    path = SPEC / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"checkpoint key spec {path} is not available")
    header: dict[str, int] = {}
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            for part in line.lstrip("# ").split(";"):
                if ":" in part:
                    key, value = part.rsplit(":", 1)
                    if value.strip().isdigit():
                        header[key.strip()] = int(value)
        elif line.strip():
            rows.append(line)
    return header, rows


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_state_dict_equals_released_layout(name: str) -> None:
    header, rows = _spec_lines(name)
    model = built(name)
    mine = [f"{k}\t{tuple(v.shape)}\t{str(v.dtype).removeprefix('torch.')}" for k, v in model.state_dict().items()]
    # keys, shapes, dtypes and order
    assert mine == rows
    params = list(model.parameters())
    assert sum(p.numel() for p in params if p.requires_grad) == header["trainable"]
    assert sum(b.numel() for b in model.buffers()) == header["buffers"]
    assert len(mine) == header["num state_dict entries"]


def test_sine_reference_values_r_a4() -> None:
    table = built("transpose_r_a4").pos_embedding
    assert tuple(table.shape) == (768, 1, 256)
    assert not table.requires_grad  # frozen, as released
    expect_y = torch.tensor([0.19509032, 0.98078531, 0.16921361, 0.98557943])
    expect_x = torch.tensor([0.25881901, 0.96592581, 0.22477189, 0.97441143])
    torch.testing.assert_close(table[0, 0, :4], expect_y, atol=1e-7, rtol=0)
    torch.testing.assert_close(table[0, 0, 128:132], expect_x, atol=1e-7, rtol=0)
    assert table.double().sum().item() == pytest.approx(97138.919, abs=1e-3)


def test_sine_reference_values_h_a4() -> None:
    table = built("transpose_h_a4").pos_embedding
    assert tuple(table.shape) == (3072, 1, 96)
    expect = torch.tensor([0.09801714, 0.99518472, 0.06683584, 0.99776399])
    torch.testing.assert_close(table[0, 0, :4], expect, atol=1e-7, rtol=0)
    torch.testing.assert_close(table, sine_table(64, 48, 96), atol=0, rtol=0)


def test_sine_channel_layout() -> None:
    """First half encodes the row (constant along a row), second half the column."""
    h, w, d = 4, 3, 8
    grid = sine_table(h, w, d).reshape(h, w, d)
    assert torch.equal(grid[:, :1, : d // 2].expand(h, w, d // 2), grid[..., : d // 2])
    assert torch.equal(grid[:1, :, d // 2 :].expand(h, w, d // 2), grid[..., d // 2 :])
    assert not torch.equal(grid[0, 0], grid[1, 0]) and not torch.equal(grid[0, 0], grid[0, 1])


def test_learnable_table_is_trained_and_normal() -> None:
    model = tpose.create_model("transpose_r_a3", pos_embedding="learnable", d_model=32, num_heads=2)
    table = model.pos_embedding
    assert table.requires_grad
    assert tuple(table.shape) == (768, 1, 32)
    assert abs(table.mean().item()) < 0.1 and 0.9 < table.std().item() < 1.1
