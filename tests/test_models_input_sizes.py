"""Any valid input size works: heatmaps at H/4 x W/4, positions rebuilt or resized, 256x192 weights load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tpose
from tpose.models.position_encoding import resize_learnable, sine_table

from .conftest import TINY, tiny_model


def _capture_positions(model: torch.nn.Module) -> list[torch.Tensor | None]:
    """Record the position table the encoder receives on each forward."""
    seen: list[torch.Tensor | None] = []
    model.global_encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[1]))
    return seen


@pytest.fixture(scope="module")
def trained_r() -> torch.nn.Module:
    """A tiny TransPose-R "trained" at 256x192."""
    return tiny_model(input_size=(256, 192))


@pytest.mark.parametrize(("size", "batch"), [((384, 288), 1), ((320, 256), 1), ((128, 96), 2)])
def test_other_sizes_rebuild_sine_and_accept_256x192_weights(trained_r, size, batch) -> None:
    h, w = size
    seen = _capture_positions(trained_r)
    x = torch.randn(batch, 3, h, w)
    with torch.no_grad():
        out = trained_r(x)
    assert out.shape == (batch, 17, h // 4, w // 4)
    torch.testing.assert_close(seen[-1], sine_table(h // 8, w // 8, 32).transpose(0, 1), atol=0, rtol=0)

    # the 256x192 checkpoint loads into a model configured for this size and keeps its trained grid
    loaded = tpose.create_model("transpose_r_a3", weights=trained_r.state_dict(), **TINY, input_size=size).eval()
    assert loaded.config.input_size == (256, 192)
    assert tuple(loaded.pos_embedding.shape) == (768, 1, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), out, atol=1e-5, rtol=0)


def test_trained_size_uses_stored_table(trained_r) -> None:
    seen = _capture_positions(trained_r)
    with torch.no_grad():
        trained_r(torch.randn(1, 3, 256, 192))
    assert torch.equal(seen[-1][0], trained_r.pos_embedding[:, 0])


def test_learnable_table_is_interpolated_and_trained() -> None:
    torch.manual_seed(1)
    model = tpose.create_model("transpose_r_a3", **TINY, pos_embedding="learnable", input_size=(256, 192))
    seen = _capture_positions(model)
    model(torch.randn(1, 3, 64, 48)).sum().backward()
    expect = resize_learnable(model.pos_embedding.detach(), (32, 24), (8, 6)).transpose(0, 1)
    torch.testing.assert_close(seen[-1].detach(), expect, atol=1e-6, rtol=0)
    assert model.pos_embedding.grad is not None and model.pos_embedding.grad.abs().sum() > 0


def test_resize_learnable_keeps_a_constant_table_and_the_same_grid() -> None:
    table = torch.randn(12, 1, 4)
    torch.testing.assert_close(resize_learnable(table, (4, 3), (4, 3)), table, atol=1e-6, rtol=0)
    const = torch.full((12, 1, 4), 0.5)
    torch.testing.assert_close(resize_learnable(const, (4, 3), (8, 6)), torch.full((48, 1, 4), 0.5))


@pytest.mark.parametrize(("size", "batch"), [((64, 48), 2), ((128, 96), 1)])
def test_h_model_grid_is_a_quarter_of_the_input(size, batch) -> None:
    h, w = size
    model = tiny_model("transpose_h_s")
    seen = _capture_positions(model)
    with torch.no_grad():
        out, maps = model(torch.randn(batch, 3, h, w), return_attention=True)
    tokens = (h // 4) * (w // 4)
    assert out.shape == (batch, 17, h // 4, w // 4)
    assert maps[0].shape == (batch, tokens, tokens)
    torch.testing.assert_close(seen[-1], sine_table(h // 4, w // 4, 32).transpose(0, 1), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("name", "size", "multiple"), [("transpose_r_a3", (250, 190), 8), ("transpose_h_s", (72, 56), 16)]
)
def test_indivisible_size_names_valid_sizes(name, size, multiple) -> None:
    model = tiny_model(name)
    with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]}.*multiples of {multiple}.*256x192"):
        model(torch.randn(1, 3, *size))
    with pytest.raises(ValueError, match=f"multiples of {multiple}"):
        tpose.create_model(name, **TINY, input_size=size)


def test_wrong_channel_count_and_non_tensor_input() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\].*\(2, 1, 64, 48\)"):
        model(torch.randn(2, 1, 64, 48))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.randn(3, 64, 48))
    with pytest.raises(TypeError, match="ndarray"):
        model(np.zeros((1, 3, 64, 48), dtype=np.float32))
