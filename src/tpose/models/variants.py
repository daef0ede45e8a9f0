"""Named TransPose architectures, in the manner of timm's ``_registry``: names -> ``ModelConfig``, nothing else.

This registry knows no weights (``tpose.weights``) and no downloads; ``tpose.create_model`` is where
architectures, weights and files meet.
"""

from __future__ import annotations

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


def list_variants() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_VARIANTS)


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The architecture of variant ``name`` with ``overrides`` applied."""
    if name not in _VARIANTS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_variants())}")
    return _VARIANTS[name].with_overrides(**overrides)


def build_model(name: str, **overrides: Any) -> TransPose:
    """Variant ``name`` with ``overrides`` (``num_keypoints``, ``d_model``, ``num_layers``, ``num_heads``,
    ``dim_feedforward``, ``pos_embedding``, ``dropout``, ``backbone``, ``input_size``), randomly initialised.
    ``model.variant`` keeps the name, which saved weights record with their overrides."""
    model = TransPose(get_config(name, **overrides))
    model.variant = name
    return model


def variant_configs() -> dict[str, ModelConfig]:
    return dict(_VARIANTS)
