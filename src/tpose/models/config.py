"""The architecture of one TransPose model, as plain data (saved beside our weights as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

BACKBONES = ("resnet_s", "resnet_s_star", "hrnet_s_w32", "hrnet_s_w48")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet_s"
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 8
    dim_feedforward: int = 1024
    num_keypoints: int = 17
    pos_embedding: str = "sine"
    dropout: float = 0.1
    image_size: tuple[int, int] = (256, 192)  # (H, W) the position table is built for

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))

    @property
    def head(self) -> str:
        return "deconv" if self.backbone.startswith("resnet") else "conv1x1"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown model overrides {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **overrides)
