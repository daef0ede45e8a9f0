"""ResNet-S (supplementary Table 1): ResNet-50's stem, layer1 and a short layer2, stride 8."""

from __future__ import annotations

import torch
from torch import nn

from .backbones import register_backbone, same_keys
from .blocks import Bottleneck, make_layer


class ResNetS(nn.Module):
    """Returns a 512-channel map at stride 8. ``layer2_blocks=10`` gives ResNet-S*."""

    stride = 8
    out_channels = 512
    size_multiple = 8

    def __init__(self, layer2_blocks: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(Bottleneck, 64, 64, 3)
        self.layer2 = make_layer(Bottleneck, 256, 128, layer2_blocks, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))


@register_backbone("resnet_s", head="deconv", imagenet_init=same_keys)
def resnet_s() -> ResNetS:
    """ResNet-S: four layer2 blocks (TransPose-R)."""
    return ResNetS(layer2_blocks=4)


@register_backbone("resnet_s_star", head="deconv", imagenet_init=same_keys)
def resnet_s_star() -> ResNetS:
    """ResNet-S*: ten layer2 blocks."""
    return ResNetS(layer2_blocks=10)
