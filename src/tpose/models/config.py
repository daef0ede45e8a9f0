"""The architecture of one TransPose model, as plain data (saved beside our weights as JSON)."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

BACKBONES = ("resnet_s", "resnet_s_star", "hrnet_s_w32", "hrnet_s_w48")


def _renamed(data: dict[str, Any], where: str) -> dict[str, Any]:
    """``image_size`` is the former name of ``input_size``: accept it (files written before say so)."""
    if "image_size" not in data:
        return data
    data = dict(data)
    if "input_size" in data:
        raise ValueError(f"{where}: give input_size, not both input_size and image_size (its former name)")
    if where == "model overrides":  # files written before keep their key silently; callers are told
        warnings.warn("the image_size= override is now input_size=", DeprecationWarning, stacklevel=4)
    data["input_size"] = data.pop("image_size")
    return data


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
    input_size: tuple[int, int] = (256, 192)  # (H, W) the model's input and position table are built for

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @property
    def head(self) -> str:
        return "deconv" if self.backbone.startswith("resnet") else "conv1x1"

    @property
    def image_size(self) -> tuple[int, int]:
        """Deprecated name of :attr:`input_size`."""
        warnings.warn("ModelConfig.image_size is now input_size", DeprecationWarning, stacklevel=2)
        return self.input_size

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = _renamed(data, "model config")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        overrides = _renamed(overrides, "model overrides")
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown model overrides {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **overrides)
