"""Architecture overrides build, run and change what they say; bad ones fail clearly."""

from __future__ import annotations

import pytest
import torch

import tpose

from .conftest import TINY

X = torch.randn(2, 3, 64, 48)


def _run(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


@pytest.mark.parametrize("name", ["transpose_r_a3", "transpose_h_s"])
@pytest.mark.parametrize(
    "override",
    [
        {"num_keypoints": 14},
        {"d_model": 48, "num_heads": 4},
        {"num_layers": 2},
        {"num_heads": 4},
        {"dim_feedforward": 48},
        {"pos_embedding": "sine"},
        {"pos_embedding": "learnable"},
        {"pos_embedding": "none"},
        {"dropout": 0.0},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_override_builds_and_runs(name: str, override: dict) -> None:
    model = tpose.create_model(name, **{**TINY, **override})
    for key, value in override.items():
        assert getattr(model.config, key) == value
    out = _run(model)
    assert out.shape == (2, model.config.num_keypoints, 16, 12)
    assert torch.isfinite(out).all()
    cfg = model.config
    assert len(model.global_encoder.layers) == cfg.num_layers
    attn = model.global_encoder.layers[0].self_attn
    assert attn.heads == cfg.num_heads and tuple(attn.in_proj_weight.shape) == (3 * cfg.d_model, cfg.d_model)
    assert model.global_encoder.layers[0].linear1.out_features == cfg.dim_feedforward
    assert model.final_layer.out_channels == cfg.num_keypoints
    if cfg.pos_embedding == "none":
        assert model.pos_embedding is None and "pos_embedding" not in model.state_dict()
    else:
        assert model.pos_embedding.requires_grad == (cfg.pos_embedding == "learnable")


def test_resnet_s_star_has_ten_layer2_blocks() -> None:
    small = tpose.create_model("transpose_r_a3", **TINY)
    star = tpose.create_model("transpose_r_a3", **TINY, backbone="resnet_s_star")
    assert len(star.layer2) == 10 and len(small.layer2) == 4
    # six more 512 -> 128 -> 512 bottlenecks (convs + BN affine)
    block = 512 * 128 + 128 * 128 * 9 + 128 * 512 + 2 * (128 + 128 + 512)
    extra = sum(p.numel() for p in star.parameters()) - sum(p.numel() for p in small.parameters())
    assert extra == 6 * block
    assert _run(star).shape == (2, 17, 16, 12)


def test_dropout_override_reaches_every_dropout() -> None:
    model = tpose.create_model("transpose_r_a3", **TINY, dropout=0.0).train()
    with torch.no_grad():
        a, b = model(X), model(X)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    noisy = tpose.create_model("transpose_r_a3", **TINY, dropout=0.5).train()
    with torch.no_grad():
        assert not torch.equal(noisy(X), noisy(X))


def test_former_override_spellings_are_gone() -> None:
    """The short aliases (d=, layers=, heads=, ffn=, num_joints=, pos=) and image_size= were removed."""
    for former in ({"d": 32}, {"layers": 1}, {"heads": 2}, {"ffn": 64}, {"num_joints": 14}, {"pos": "none"},
                   {"image_size": (64, 48)}):
        with pytest.raises(TypeError, match="unknown model overrides"):
            tpose.create_model("transpose_r_a3", **former)
    with pytest.raises(ValueError, match="unknown model config keys"):
        tpose.ModelConfig.from_dict({"image_size": [64, 48]})


def test_bad_overrides_fail_clearly() -> None:
    with pytest.raises(TypeError, match=r"unknown model overrides \['depth'\]"):
        tpose.create_model("transpose_r_a3", depth=3)
    with pytest.raises(ValueError, match="transpose_r_a3"):
        tpose.create_model("transpose_x")
    with pytest.raises(ValueError, match=r"d \(30\) must be divisible by the number of heads \(4\)"):
        tpose.create_model("transpose_r_a3", d_model=30, num_heads=4, pos_embedding="none")
    with pytest.raises(ValueError, match="sine position embedding needs d_model divisible by 4, got 30"):
        tpose.create_model("transpose_r_a3", d_model=30, num_heads=2)
    with pytest.raises(ValueError, match="backbone must be one of"):
        tpose.create_model("transpose_r_a3", backbone="vgg")
    with pytest.raises(ValueError, match="position embedding must be one of"):
        tpose.create_model("transpose_r_a3", **TINY, pos_embedding="rope")
