"""Heatmap codecs: keypoints to training targets and heatmaps back to keypoints."""

from .heatmap import encode_gaussian

__all__ = ["encode_gaussian"]
