"""The architecture of one TransPose model, as plain data (saved beside our weights as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .backbones import Head, backbone_spec


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet_s"  # a registered backbone (tpose.list_backbones())
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 8
    dim_feedforward: int = 1024
    num_keypoints: int = 17
    pos_embedding: str = "sine"
    dropout: float = 0.1
    input_size: tuple[int, int] = (256, 192)  # (H, W) the model's input and position table are built for

    def __post_init__(self) -> None:
        backbone_spec(self.backbone)  # an unregistered name fails here, naming the registered ones
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @property
    def head(self) -> Head:
        """The heatmap head its backbone was registered with."""
        return backbone_spec(self.backbone).head

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_size"] = list(self.input_size)
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
