"""TransPose: CNN features -> token sequence -> Transformer encoder -> keypoint heatmaps."""

from __future__ import annotations

import torch
from torch import nn

from ..codecs import HEATMAP_STRIDE
from .config import ModelConfig
from .encoder import Encoder
from .heads import deconv_head, final_layer
from .hrnet import HRNetS
from .position_encoding import PositionEmbedding
from .resnet import ResNetS


def _build_backbone(name: str) -> nn.Module:
    if name == "resnet_s":
        return ResNetS(layer2_blocks=4)
    if name == "resnet_s_star":
        return ResNetS(layer2_blocks=10)
    if name == "hrnet_s_w32":
        return HRNetS(width=32)
    if name == "hrnet_s_w48":
        return HRNetS(width=48)
    raise ValueError(f"unknown backbone {name!r}")


class TransPose(nn.Module):
    """``model(x)`` gives heatmaps [B, K, H/4, W/4]; ``return_attention=True`` adds every layer's map.

    The backbone's modules sit at the top level (``conv1``, ``layer1``, ``stage3``...), as in the
    released checkpoints, so ``load_state_dict(released, strict=True)`` works.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        backbone = _build_backbone(config.backbone)
        self.backbone_stride: int = backbone.stride
        self.size_multiple: int = getattr(backbone, "size_multiple", backbone.stride)
        h, w = config.input_size
        self._check_size(h, w)
        grid = (h // self.backbone_stride, w // self.backbone_stride)
        self.position = PositionEmbedding(config.pos_embedding, grid, config.d_model)
        table = self.position.initial_table()
        if table is not None:
            # first in the state dict, as released; frozen for sine, trained for learnable
            self.pos_embedding = nn.Parameter(table, requires_grad=config.pos_embedding == "learnable")
        else:
            self.pos_embedding = None
        self._backbone_names = [n for n, _ in backbone.named_children()]
        for name, module in backbone.named_children():
            self.add_module(name, module)
        self._backbone_forward = type(backbone).forward
        self.reduce = nn.Conv2d(backbone.out_channels, config.d_model, 1, bias=False)
        self.global_encoder = Encoder(
            config.d_model, config.num_heads, config.dim_feedforward, config.num_layers, config.dropout
        )
        if config.head == "deconv":
            self.deconv_layers = deconv_head(config.d_model)
            self.final_layer = final_layer(256, config.num_keypoints)
        else:
            self.deconv_layers = None
            self.final_layer = final_layer(config.d_model, config.num_keypoints)
        self._init_backbone()

    def _init_backbone(self) -> None:
        for name in self._backbone_names:
            for m in getattr(self, name).modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")

    @property
    def heatmap_stride(self) -> int:
        """Heatmaps are 1/stride of the input (read by the codec the loader builds)."""
        return HEATMAP_STRIDE

    def _check_size(self, h: int, w: int) -> None:
        m = self.size_multiple
        if h % m or w % m or h < m or w < m:
            raise ValueError(
                f"input size {h}x{w} does not fit the {self.config.backbone} backbone: height and width "
                f"must be positive multiples of {m} (e.g. 256x192, 384x288, 320x256, 128x96)"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone + ``reduce``: [B, d, h, w]."""
        return self.reduce(self._backbone_forward(self, x))

    def forward(
        self, x: torch.Tensor, return_attention: bool = False, keep_heads: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"TransPose expects a torch.Tensor of shape [B, 3, H, W], got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"TransPose expects input of shape [B, 3, H, W] (RGB), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"TransPose expects a float tensor (ImageNet-normalised RGB, see tpose.codecs."
                            f"normalize_batch), got {x.dtype}")
        dtype = self.reduce.weight.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(dtype)  # float64 or half input to a float32 model (or the reverse): convert, not fail
        self._check_size(x.shape[2], x.shape[3])
        feats = self.features(x)
        b, d, h, w = feats.shape
        tokens = feats.flatten(2).transpose(1, 2)  # [B, L, d], token index = row * w + col
        table = self.position.table_for(self.pos_embedding, (h, w))
        pos = None if table is None else table.transpose(0, 1).to(tokens.dtype)  # [1, L, d]
        tokens, maps = self.global_encoder(tokens, pos, need_weights=return_attention, keep_heads=keep_heads)
        out = tokens.transpose(1, 2).reshape(b, d, h, w)
        if self.deconv_layers is not None:
            out = self.deconv_layers(out)
        heatmaps = self.final_layer(out)
        if return_attention:
            return heatmaps, maps
        return heatmaps
