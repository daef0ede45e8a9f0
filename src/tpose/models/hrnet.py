"""HRNet-S-W32/W48 (supplementary Table 2): HRNet's stem, layer1, stage2 and stage3, stride 4.

Module and key names follow the HRNet reference layout (``transition1``, ``stage2.0.branches``,
``fuse_layers``...) because the released TransPose-H checkpoints use them.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import register_backbone, same_keys
from .blocks import BasicBlock, Bottleneck, conv3x3, make_layer


def _conv_bn(cin: int, cout: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every branch fused into every output branch."""

    def __init__(self, channels: list[int], blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(make_layer(BasicBlock, c, c, blocks) for c in channels)
        fuse_layers = []
        for i in range(n if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 conv then nearest upsampling
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], 1, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(None)
                else:  # higher resolution: a chain of strided 3x3 convs
                    steps = [_conv_bn(channels[j], channels[j], 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(channels[j], channels[i], 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, fuse in enumerate(row):
                if fuse is not None:
                    y = y + fuse(xs[j])
            out.append(self.relu(y))
        return out


class HRNetS(nn.Module):
    """Returns a ``width``-channel map at stride 4 (the highest-resolution branch of stage 3)."""

    stride = 4
    # inputs must divide by the lowest branch's stride so that upsampled branches line up
    size_multiple = 16

    def __init__(self, width: int = 32, stage3_modules: int = 4, blocks: int = 4) -> None:
        super().__init__()
        c = width
        self.out_channels = c
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)
        self.transition1 = nn.ModuleList(
            [_conv_bn(256, c, 1, relu=True), nn.Sequential(_conv_bn(256, 2 * c, 2, relu=True))]
        )
        self.stage2 = nn.Sequential(HighResolutionModule([c, 2 * c], blocks))
        self.transition2 = nn.ModuleList([None, None, nn.Sequential(_conv_bn(2 * c, 4 * c, 2, relu=True))])
        self.stage3 = nn.Sequential(
            *(
                HighResolutionModule([c, 2 * c, 4 * c], blocks, multi_scale_output=k < stage3_modules - 1)
                for k in range(stage3_modules)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = [t(x) for t in self.transition1]
        xs = self.stage2(xs)
        xs = [xs[i] if t is None else t(xs[-1]) for i, t in enumerate(self.transition2)]
        return self.stage3(xs)[0]


@register_backbone("hrnet_s_w32", head="conv1x1", imagenet_init=same_keys)
def hrnet_s_w32() -> HRNetS:
    """HRNet-S-W32 (TransPose-H-S)."""
    return HRNetS(width=32)


@register_backbone("hrnet_s_w48", head="conv1x1", imagenet_init=same_keys)
def hrnet_s_w48() -> HRNetS:
    """HRNet-S-W48 (TransPose-H-A4/A5/A6)."""
    return HRNetS(width=48)
