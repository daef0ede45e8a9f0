"""TransPose models: backbones, position embeddings, encoder, heads and the registry."""

from .config import ModelConfig
from .registry import create_model, get_config, list_models
from .transpose import TransPose

__all__ = ["ModelConfig", "TransPose", "create_model", "get_config", "list_models"]
