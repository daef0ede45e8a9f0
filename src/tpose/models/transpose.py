"""TransPose: CNN features -> token sequence -> Transformer encoder -> keypoint heatmaps."""

from __future__ import annotations

import torch
from torch import nn

from ..codecs import HEATMAP_STRIDE
from .backbones import build_backbone
from .config import ModelConfig
from .encoder import Encoder
from .heads import deconv_head, final_layer
from .position_encoding import PositionEmbedding

# TransPose's own top-level names, which a backbone's child modules must not take
_OWN_NAMES = frozenset({"position", "pos_embedding", "reduce", "global_encoder", "deconv_layers", "final_layer"})


class TransPose(nn.Module):
    """``model(x)`` gives heatmaps [B, K, H/4, W/4]; ``return_attention=True`` adds every layer's map.

    The backbone's child modules sit at the top level (``conv1``, ``layer1``, ``stage3``...), as in the
    released checkpoints, so ``load_state_dict(released, strict=True)`` works; the backbone object itself
    is kept outside the module tree and called on those same modules.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        backbone = build_backbone(config.backbone)
        self.backbone_stride: int = backbone.stride
        self.size_multiple: int = backbone.size_multiple
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
        taken = sorted(_OWN_NAMES.intersection(self._backbone_names))
        if taken:
            raise ValueError(f"backbone {config.backbone!r} names child modules {taken}, which TransPose uses itself")
        for name, module in backbone.named_children():
            self.add_module(name, module)
        # outside the module tree (no ``backbone.`` key prefix): its children above are the registered ones
        object.__setattr__(self, "_backbone", backbone)
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
        for m in self._backbone.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")

    def train(self, mode: bool = True) -> TransPose:
        """As ``nn.Module.train``, and the backbone object's own flag too (it sits outside the module tree)."""
        super().train(mode)
        self._backbone.training = mode
        return self

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
        return self.reduce(self._backbone(x))

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
