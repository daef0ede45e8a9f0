"""tpose: TransPose keypoint localization whose attention maps explain every prediction."""

from .inference import PosePredictor
from .models import ModelConfig, TransPose, create_model, list_models

__version__ = "0.1.0"

__all__ = ["ModelConfig", "PosePredictor", "TransPose", "create_model", "list_models", "__version__"]
