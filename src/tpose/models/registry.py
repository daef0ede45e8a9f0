"""Named TransPose variants and ``create_model``, in the manner of timm's registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ModelConfig
from .transpose import TransPose

_VARIANTS: dict[str, ModelConfig] = {
    "transpose_r_a3": ModelConfig("resnet_s", 256, 3, 8, 1024),
    "transpose_r_a4": ModelConfig("resnet_s", 256, 4, 8, 1024),
    "transpose_h_s": ModelConfig("hrnet_s_w32", 64, 4, 1, 128),
    "transpose_h_a4": ModelConfig("hrnet_s_w48", 96, 4, 1, 192),
    "transpose_h_a5": ModelConfig("hrnet_s_w48", 96, 5, 1, 192),
    "transpose_h_a6": ModelConfig("hrnet_s_w48", 96, 6, 1, 192),
}

# file names of the paper's released COCO checkpoints
RELEASED_FILES = {
    "transpose_r_a3": "tp_r_256x192_enc3_d256_h1024_mh8.pth",
    "transpose_r_a4": "tp_r_256x192_enc4_d256_h1024_mh8.pth",
    "transpose_h_s": "tp_h_32_256x192_enc4_d64_h128_mh1.pth",
    "transpose_h_a4": "tp_h_48_256x192_enc4_d96_h192_mh1.pth",
    "transpose_h_a6": "tp_h_48_256x192_enc6_d96_h192_mh1.pth",
}

# legacy spellings a user may type, mapped to the canonical names
_OVERRIDE_ALIASES = {"d": "d_model", "layers": "num_layers", "heads": "num_heads", "ffn": "dim_feedforward",
                     "num_joints": "num_keypoints", "pos": "pos_embedding", "pe": "pos_embedding"}


def list_models(pretrained: bool = False) -> list[str]:
    """Names accepted by :func:`create_model`; with ``pretrained=True`` only those that have weights."""
    if pretrained:
        from ..weights_registry import variants_with_weights

        have = set(variants_with_weights())
        return sorted(n for n in _VARIANTS if n in have)
    return sorted(_VARIANTS)


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The architecture of variant ``name`` with ``overrides`` applied."""
    if name not in _VARIANTS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    overrides = {_OVERRIDE_ALIASES.get(k, k): v for k, v in overrides.items()}
    return _VARIANTS[name].with_overrides(**overrides)


def create_model(
    name: str, checkpoint: str | Path | None = None, pretrained: bool | str = False, **overrides: Any
) -> TransPose:
    """Build variant ``name`` (see :func:`list_models`), optionally loading weights.

    ``overrides`` change the architecture: ``num_keypoints``, ``d_model``, ``num_layers``,
    ``num_heads``, ``dim_feedforward``, ``pos_embedding`` (``sine``/``learnable``/``none``),
    ``dropout``, ``backbone`` (e.g. ``resnet_s_star``), ``image_size``.
    ``checkpoint`` is a released ``.pth`` state dict or a tpose ``.safetensors`` file; it must fit
    exactly, otherwise the error lists the missing and unexpected keys.
    ``pretrained`` names registered weights (``True`` = the variant's default tag, or a tag such as
    ``"coco-256x192"``), downloaded once into the torch hub cache; see ``tpose weights``.
    """
    if pretrained:
        if checkpoint is not None:
            raise ValueError("give either checkpoint= or pretrained=, not both")
        from ..hub import load_pretrained

        return load_pretrained(name, pretrained, **overrides)
    model = TransPose(get_config(name, **overrides))
    if checkpoint is not None:
        from .checkpoint import load_weights

        load_weights(model, checkpoint)
    return model


def variant_configs() -> dict[str, ModelConfig]:
    return dict(_VARIANTS)
