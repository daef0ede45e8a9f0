"""TransPose architectures: backbones, position embeddings, encoder, heads, the variant registry, weights
files (``checkpoint``) and the ONNX-backed model with the same call (``onnx_model``)."""

# the built-in backbones register themselves on import (resnet_s, resnet_s_star, hrnet_s_w32, hrnet_s_w48)
from . import hrnet, resnet
from .backbones import Backbone, list_backbones, register_backbone
from .config import ModelConfig
from .transpose import TransPose
from .variants import build_model, get_config, list_variants

__all__ = [
    "Backbone",
    "ModelConfig",
    "TransPose",
    "build_model",
    "get_config",
    "hrnet",
    "list_backbones",
    "list_variants",
    "register_backbone",
    "resnet",
]
