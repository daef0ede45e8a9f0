"""Between images and heatmaps: crop geometry, the input normalisation, and the configured heatmap codec."""

from .affine import PIXEL_STD, affine_points, box_to_center_scale, crop, get_affine_transform
from .codec import BOX_PADDING, HEATMAP_STRIDE, SIGMA, HeatmapCodec
from .decode import (
    DEFAULT_DECODER,
    DecodeOptions,
    Decoder,
    decode_heatmaps,
    flip_heatmaps_back,
    get_decoder,
    heatmap_to_image,
    list_decoders,
    register_decoder,
)
from .heatmap import encode_gaussian
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, denormalize_image, normalize_batch, normalize_image

__all__ = [
    "BOX_PADDING",
    "DEFAULT_DECODER",
    "HEATMAP_STRIDE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PIXEL_STD",
    "SIGMA",
    "DecodeOptions",
    "Decoder",
    "HeatmapCodec",
    "affine_points",
    "box_to_center_scale",
    "crop",
    "decode_heatmaps",
    "denormalize_image",
    "encode_gaussian",
    "flip_heatmaps_back",
    "get_affine_transform",
    "get_decoder",
    "heatmap_to_image",
    "list_decoders",
    "normalize_batch",
    "normalize_image",
    "register_decoder",
]
