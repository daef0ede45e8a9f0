"""tpose: TransPose keypoint localization whose attention maps explain every prediction."""

from .models import ModelConfig, TransPose, create_model, list_models

__version__ = "0.1.0"

__all__ = ["ModelConfig", "TransPose", "create_model", "list_models", "__version__"]
