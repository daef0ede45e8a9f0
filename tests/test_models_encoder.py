"""The encoder is post-norm with positions on queries and keys only; attention maps are consistent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tpose.models.encoder import Encoder, EncoderLayer

from .conftest import TINY, tiny_model


def _reference_layer(layer: EncoderLayer, heads: int) -> nn.Module:
    """A hand-written post-norm layer around torch's MultiheadAttention, sharing ``layer``'s weights."""
    d = layer.norm1.normalized_shape[0]
    mha = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(layer.self_attn.in_proj_weight)
        mha.in_proj_bias.copy_(layer.self_attn.in_proj_bias)
        mha.out_proj.weight.copy_(layer.self_attn.out_proj.weight)
        mha.out_proj.bias.copy_(layer.self_attn.out_proj.bias)

    class Reference(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x, pos, pos_on_values=False, average=True):
            value = x + pos if pos_on_values else x
            attn, weights = self.mha(x + pos, x + pos, value, need_weights=True, average_attn_weights=average)
            z = layer.norm1(x + attn)
            out = layer.norm2(z + layer.linear2(torch.relu(layer.linear1(z))))
            return out, weights

    return Reference().eval()


@pytest.fixture()
def layer_and_inputs() -> tuple[EncoderLayer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    layer = EncoderLayer(16, 2, 32, dropout=0.1).eval()
    with torch.no_grad():
        layer.self_attn.in_proj_bias.normal_()
        layer.norm1.weight.normal_()
        layer.norm2.bias.normal_()
    x = torch.randn(3, 12, 16)
    pos = torch.randn(1, 12, 16)
    return layer, x, pos


def test_layer_matches_multihead_attention_reference(layer_and_inputs) -> None:
    layer, x, pos = layer_and_inputs
    ref = _reference_layer(layer, heads=2)
    with torch.no_grad():
        out, weights = layer(x, pos, need_weights=True)
        fused, none = layer(x, pos)
        expect, expect_w = ref(x, pos)
        wrong, _ = ref(x, pos, pos_on_values=True)
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused, expect, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights, expect_w, atol=1e-5, rtol=0)
    assert none is None
    # the check can tell where the position goes: adding it to the values gives another result
    assert (out - wrong).abs().max() > 1e-3


def test_layer_heads_match_reference(layer_and_inputs) -> None:
    layer, x, pos = layer_and_inputs
    ref = _reference_layer(layer, heads=2)
    with torch.no_grad():
        _, per_head = layer(x, pos, need_weights=True, keep_heads=True)
        _, expect = ref(x, pos, average=False)
    assert per_head.shape == (3, 2, 12, 12)
    torch.testing.assert_close(per_head, expect, atol=1e-5, rtol=0)


def test_layer_without_positions_is_plain_self_attention(layer_and_inputs) -> None:
    layer, x, _ = layer_and_inputs
    ref = _reference_layer(layer, heads=2)
    with torch.no_grad():
        out, _ = layer(x, None)
        expect, _ = ref(x, torch.zeros(1, 12, 16))
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=0)


def test_encoder_stacks_layers_without_final_norm() -> None:
    torch.manual_seed(1)
    enc = Encoder(16, 2, 32, num_layers=3).eval()
    x, pos = torch.randn(2, 10, 16), torch.randn(1, 10, 16)
    with torch.no_grad():
        out, maps = enc(x, pos, need_weights=True)
        y = x
        for layer in enc.layers:
            y, _ = layer(y, pos)
    # explicit softmax (need_weights) vs the fused kernel: float rounding differs by ~1e-6 on AVX-512
    torch.testing.assert_close(out, y, atol=1e-5, rtol=0)
    assert len(maps) == 3
    assert not any(isinstance(m, nn.LayerNorm) for m in enc.children())


def test_encoder_matrices_are_xavier_uniform() -> None:
    torch.manual_seed(2)
    enc = Encoder(64, 4, 128, num_layers=1)
    w = enc.layers[0].linear1.weight
    bound = (6 / (w.shape[0] + w.shape[1])) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


@pytest.mark.parametrize(
    ("name", "size", "tokens"),
    [("transpose_r_a3", (64, 48), 8 * 6), ("transpose_h_s", (64, 48), 16 * 12)],
)
def test_model_attention_consistent(name: str, size: tuple[int, int], tokens: int) -> None:
    model = tiny_model(name, 3, num_layers=2)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        plain = model(x)
        heatmaps, maps = model(x, return_attention=True)
        heatmaps_h, maps_h = model(x, return_attention=True, keep_heads=True)
    torch.testing.assert_close(heatmaps, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(heatmaps_h, plain, atol=1e-5, rtol=0)
    assert len(maps) == len(maps_h) == 2
    for avg, per_head in zip(maps, maps_h, strict=True):
        assert avg.shape == (2, tokens, tokens)
        assert per_head.shape == (2, TINY["num_heads"], tokens, tokens)
        torch.testing.assert_close(avg.sum(-1), torch.ones(2, tokens), atol=1e-5, rtol=0)
        torch.testing.assert_close(per_head.sum(-1), torch.ones(2, 2, tokens), atol=1e-5, rtol=0)
        torch.testing.assert_close(per_head.mean(1), avg, atol=1e-6, rtol=0)
        assert (avg >= 0).all()
