"""Heatmap codecs: keypoints to training targets and heatmaps back to keypoints."""

from .decode import decode_heatmaps, flip_heatmaps_back, heatmap_to_image
from .heatmap import encode_gaussian

__all__ = ["decode_heatmaps", "encode_gaussian", "flip_heatmaps_back", "heatmap_to_image"]
