"""The cheap CPU dropout mask: right drop rate in every 16-bit lane, unbiased, seeded, and switchable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tpose import create_model
from tpose.models import dropout as dropout_mod
from tpose.models import encoder as encoder_mod
from tpose.models.dropout import Dropout, drop_threshold, fast_dropout, keep_mask, set_fast_dropout


def test_threshold_rounds_p_to_16_bits_and_scales_by_the_exact_keep_probability() -> None:
    threshold, scale = drop_threshold(0.1)
    assert threshold == 6554 - 32768
    assert scale == pytest.approx(65536 / (65536 - 6554))
    assert drop_threshold(0.0) == (-32768, 1.0)
    with pytest.raises(ValueError, match="dropout probability"):
        drop_threshold(1.0)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_rate_is_right_in_each_of_the_four_lanes_of_a_random_word(p: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask((1 << 20,), p)
    assert mask.dtype == torch.bool and mask.shape == (1 << 20,)
    lanes = mask.view(-1, 4).float().mean(dim=0)  # each int64 draw feeds four consecutive elements
    # binomial standard error with n = 2^18 per lane is < 0.001; 0.005 is five of them
    assert torch.allclose(lanes, torch.full((4,), 1 - p), atol=0.005), lanes


def test_odd_sizes_and_shapes() -> None:
    for shape in [(1,), (3, 5), (2, 3, 7, 9)]:
        assert keep_mask(shape, 0.3).shape == shape


def test_output_is_unbiased_and_kept_elements_are_scaled() -> None:
    torch.manual_seed(1)
    x = torch.ones(1 << 20)
    y = fast_dropout(x, 0.1)
    _, scale = drop_threshold(0.1)
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(scale)
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)


def test_same_seed_same_mask_and_the_generator_advances() -> None:
    torch.manual_seed(3)
    a, b = keep_mask((1000,), 0.5), keep_mask((1000,), 0.5)
    torch.manual_seed(3)
    assert torch.equal(keep_mask((1000,), 0.5), a)
    assert not torch.equal(a, b)


def test_gradient_is_the_same_mask_and_scale() -> None:
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    y = fast_dropout(x, 0.25)
    y.sum().backward()
    _, scale = drop_threshold(0.25)
    kept = y.detach() != 0
    assert torch.allclose(x.grad, kept.float() * scale)
    assert torch.allclose(y.detach()[kept], x.detach()[kept] * scale)


def test_identity_when_not_training_or_p_zero() -> None:
    x = torch.randn(8, 8)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))


def test_module_uses_pytorch_dropout_when_switched_off(monkeypatch) -> None:
    layer = Dropout(0.3)
    calls = []
    monkeypatch.setattr(dropout_mod, "fast_dropout", lambda x, p, t: calls.append(p) or x)
    layer(torch.ones(4))
    assert calls == [0.3]
    layer.fast_dropout = False
    torch.manual_seed(5)
    got = layer(torch.ones(1000))
    torch.manual_seed(5)
    assert torch.equal(got, F.dropout(torch.ones(1000), 0.3, True))
    assert calls == [0.3]


def test_model_switch_reaches_every_dropout_and_the_attention(monkeypatch) -> None:
    model = create_model("transpose_r_a3", num_layers=2, input_size=(64, 48)).train()
    switchable = [m for m in model.modules() if hasattr(m, "fast_dropout")]
    assert len(switchable) == 2 * 4  # per layer: attention weights, dropout, dropout1, dropout2
    seen: list[tuple[int, ...]] = []

    def spy(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return x

    monkeypatch.setattr(encoder_mod, "fast_dropout", spy)
    x = torch.randn(2, 3, 64, 48)
    model(x)
    assert (2, 8, 48, 48) in seen  # [B, heads, L, L] attention weights of 8x6 tokens
    seen.clear()
    set_fast_dropout(model, False)
    assert all(not m.fast_dropout for m in switchable)
    model(x)
    assert seen == []
    model.eval()
    set_fast_dropout(model, True)
    with torch.no_grad():
        a = model(x)
    with torch.no_grad():
        b = model(x, return_attention=True)[0]
    assert torch.allclose(a, b, atol=1e-5)  # eval: no dropout on either path
