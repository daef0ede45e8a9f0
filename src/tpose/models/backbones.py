"""The backbone contract and its registry: a new backbone is one file and one ``register_backbone`` call.

A backbone is the network part before the Transformer: an ``nn.Module`` whose ``forward(x)`` maps an
ImageNet-normalised RGB batch [B, 3, H, W] to features [B, out_channels, H / stride, W / stride], and which
states that contract as attributes (:class:`Backbone`). TransPose mounts the backbone's child modules at its
own top level, so the weights keep the released flat keys (``conv1.weight``, ``layer1.0...``, ``stage3...``),
and calls the backbone itself on them. Which head upsamples the features to the heatmaps (stride 4) is part
of the registration, not of the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from ..codecs import HEATMAP_STRIDE

Head = Literal["deconv", "conv1x1"]
# how much each head upsamples the backbone's features on the way to the heatmaps
HEAD_UPSAMPLING: dict[str, int] = {"deconv": 2, "conv1x1": 1}
StateDict = dict[str, torch.Tensor]


@runtime_checkable
class Backbone(Protocol):
    """What TransPose needs of a backbone (an ``nn.Module``).

    ``stride``: input pixels per feature pixel; ``out_channels``: channels of the feature map; ``size_multiple``:
    input height and width must be multiples of it (a multiple of ``stride``; more for backbones whose branches
    must line up). Its parameters and buffers live in child modules (those become TransPose's top-level
    modules); TransPose initialises its convolutions (Kaiming) and batch norms (ones, zeros) when built.
    """

    stride: int
    out_channels: int
    size_multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone: how to build it, its head, and how ImageNet weights map onto its keys."""

    name: str
    factory: Callable[[], nn.Module]
    head: Head
    imagenet_init: Callable[[StateDict], StateDict] | None


@dataclass(frozen=True)
class BackboneInfo:
    """A backbone's contract, read without building its weights."""

    stride: int
    out_channels: int
    size_multiple: int
    head: Head


_BACKBONES: dict[str, BackboneSpec] = {}

F = TypeVar("F", bound=Callable[[], nn.Module])


def same_keys(state: StateDict) -> StateDict:
    """ImageNet weights whose keys are already the backbone's (torchvision ResNet-50, official HRNet)."""
    return state


def register_backbone(
    name: str,
    *,
    head: Head,
    imagenet_init: Callable[[StateDict], StateDict] | None = None,
    replace: bool = False,
) -> Callable[[F], F]:
    """Decorator registering a backbone factory (a class or a function with no arguments) under ``name``.

    ``head``: ``"deconv"`` (x2 upsampling, for stride-8 backbones) or ``"conv1x1"`` (for stride-4 backbones).
    ``imagenet_init`` maps an ImageNet state dict onto the backbone's own keys (None: no ImageNet start).
    ``replace=True`` overrides an existing registration; otherwise a taken name is an error.
    """
    if head not in HEAD_UPSAMPLING:
        raise ValueError(f"head must be one of {sorted(HEAD_UPSAMPLING)}, got {head!r}")

    def add(factory: F) -> F:
        if name in _BACKBONES and not replace:
            raise ValueError(f"a backbone named {name!r} is already registered (pass replace=True to override it)")
        _BACKBONES[name] = BackboneSpec(name, factory, head, imagenet_init)
        backbone_info.cache_clear()
        return factory

    return add


def list_backbones() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_BACKBONES)


def backbone_spec(name: str) -> BackboneSpec:
    """The registration of backbone ``name``; ValueError naming the registered ones otherwise."""
    if name not in _BACKBONES:
        raise ValueError(f"backbone must be one of {list_backbones()}, got {name!r} (see tpose.register_backbone)")
    return _BACKBONES[name]


def build_backbone(name: str) -> nn.Module:
    """A fresh backbone ``name``, checked against the :class:`Backbone` contract."""
    spec = backbone_spec(name)
    backbone = spec.factory()
    _check_contract(spec, backbone)
    return backbone


@cache
def backbone_info(name: str) -> BackboneInfo:
    """Stride, channels, size multiple and head of backbone ``name`` (built on the meta device: no weights)."""
    spec = backbone_spec(name)
    with torch.device("meta"):
        backbone = spec.factory()
    _check_contract(spec, backbone)
    return BackboneInfo(int(backbone.stride), int(backbone.out_channels), int(backbone.size_multiple), spec.head)


def _check_contract(spec: BackboneSpec, backbone: nn.Module) -> None:
    where = f"backbone {spec.name!r}"
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"{where}: the factory must return an nn.Module, got {type(backbone).__name__}")
    for attr in ("stride", "out_channels", "size_multiple"):
        value = getattr(backbone, attr, None)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise TypeError(f"{where}: needs a positive int attribute {attr!r} (see tpose.models.backbones.Backbone), "
                            f"got {value!r}")
    if backbone.size_multiple % backbone.stride:
        raise ValueError(f"{where}: size_multiple {backbone.size_multiple} is not a multiple of its stride "
                         f"{backbone.stride}")
    if backbone.stride != HEATMAP_STRIDE * HEAD_UPSAMPLING[spec.head]:
        raise ValueError(f"{where}: a {spec.head!r} head needs stride {HEATMAP_STRIDE * HEAD_UPSAMPLING[spec.head]} "
                         f"(heatmaps are at stride {HEATMAP_STRIDE}), the backbone has stride {backbone.stride}")
    own = [n for n, _ in (*backbone.named_parameters(recurse=False), *backbone.named_buffers(recurse=False))]
    if own:
        raise TypeError(f"{where}: parameters and buffers must live in child modules (TransPose mounts those), "
                        f"found {own} on the backbone itself")
