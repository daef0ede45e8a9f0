"""Heatmap heads: a 4x4 deconvolution for TransPose-R (stride 8 -> 4), a 1x1 conv for TransPose-H."""

from __future__ import annotations

from torch import nn


def deconv_head(d: int, channels: int = 256) -> nn.Sequential:
    """``deconv_layers`` of TransPose-R: upsample x2 to stride 4."""
    deconv = nn.ConvTranspose2d(d, channels, 4, stride=2, padding=1, bias=False)
    bn = nn.BatchNorm2d(channels)
    nn.init.normal_(deconv.weight, std=0.001)
    return nn.Sequential(deconv, bn, nn.ReLU(inplace=True))


def final_layer(cin: int, num_keypoints: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, num_keypoints, 1)
    nn.init.normal_(conv.weight, std=0.001)
    nn.init.zeros_(conv.bias)
    return conv
