"""tpose: TransPose keypoint localization whose attention maps explain every prediction."""

from .codecs import list_decoders, register_decoder
from .factory import LoadedModel, create_model, list_models, load_pose_model
from .inference import PosePredictor
from .models import ModelConfig, TransPose, list_backbones, register_backbone
from .models.checkpoint import load_model, load_weights, save_weights

__version__ = "0.2.0"

__all__ = [
    "LoadedModel",
    "ModelConfig",
    "PosePredictor",
    "TransPose",
    "__version__",
    "create_model",
    "list_backbones",
    "list_decoders",
    "list_models",
    "load_model",
    "load_pose_model",
    "load_weights",
    "register_backbone",
    "register_decoder",
    "save_weights",
]
