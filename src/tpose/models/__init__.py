"""TransPose architectures: backbones, position embeddings, encoder, heads, the variant registry, weights
files (``checkpoint``) and the ONNX-backed model with the same call (``onnx_model``)."""

from .config import ModelConfig
from .registry import build_model, get_config, list_variants
from .transpose import TransPose

__all__ = ["ModelConfig", "TransPose", "build_model", "get_config", "list_variants"]
