"""Data: keypoint sets, person records, data set loaders, augmentation, the crop cache and the top-down data set."""

from ..codecs import affine_points, box_to_center_scale, crop, get_affine_transform, normalize_image
from .coco import clean_box, load_coco, load_coco_records
from .crop_cache import CachedCrops, CropCache
from .dataset import TopDownDataset
from .detections import load_detection_records
from .image_io import ImageReadError, decode_image, image_shape, read_image
from .keypoint_sets import COCO17, LIMB_JOINTS, LSP14, MPII16, KeypointSet, get_keypoint_set
from .lspet import load_lspet_joints, load_lspet_records
from .records import PersonRecord, remap_keypoints, remap_records
from .transforms import AugmentConfig, CropParams, crop_matrix, sample_crop_params

__all__ = [
    "AugmentConfig",
    "COCO17",
    "CachedCrops",
    "CropCache",
    "CropParams",
    "ImageReadError",
    "KeypointSet",
    "LIMB_JOINTS",
    "LSP14",
    "MPII16",
    "PersonRecord",
    "TopDownDataset",
    "affine_points",
    "box_to_center_scale",
    "clean_box",
    "crop",
    "crop_matrix",
    "decode_image",
    "get_affine_transform",
    "get_keypoint_set",
    "image_shape",
    "load_coco",
    "load_coco_records",
    "load_detection_records",
    "load_lspet_joints",
    "load_lspet_records",
    "normalize_image",
    "read_image",
    "remap_keypoints",
    "remap_records",
    "sample_crop_params",
]
