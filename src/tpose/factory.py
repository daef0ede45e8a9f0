"""Where architectures, weights and files meet: ``create_model``, ``list_models`` and the one loader.

``load_pose_model`` turns a variant name, a weights tag, a weights file (tpose ``.safetensors``, a
released ``.pth``) or an exported ``.onnx`` into a ready model with its keypoint set, input size and
metadata. What decides each of them, in this order (as MMPose's ``init_model`` states its own):

1. an explicit argument that only *refines* the weights wins: ``input_size`` of a model whose position
   table adapts (any size its backbone divides), ``keypoint_set`` names for the same keypoint count;
2. the weights' own metadata fills the rest (architecture, keypoint set, the size they were trained at);
   a released ``.pth`` without metadata is read off its tensors;
3. then defaults: the variant's architecture, the built-in keypoint set of that count.

An explicit argument that *contradicts* the weights is an error, never a silent choice: another variant
(``model="transpose_r_a4"`` with R-A3 weights), another keypoint count, another input size than a
fixed-size ONNX export's, an ``.onnx`` file with the torch backend or the reverse.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .codecs import HeatmapCodec
from .data.keypoint_sets import KeypointSet, get_keypoint_set, resolve_keypoint_set
from .models.checkpoint import (
    CheckpointError,
    load_model,
    load_weights,
    read_metadata,
    read_state_dict,
    variant_name,
)
from .models.config import ModelConfig
from .models.diagnosis import closest_variant, read_structure
from .models.onnx_model import OnnxPoseModel
from .models.registry import build_model, list_variants
from .models.transpose import TransPose
from .weights.download import model_for, resolve_weights, with_note
from .weights.files import cache_path, get_weights, shipped_tag, variants_with_weights
from .weights.registry import FORMER_TAGS, list_weights, tag_owners, tags

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
ONNX_SUFFIX = ".onnx"
BACKENDS = ("torch", "onnxruntime")
DEFAULT_MODEL = "transpose_r_a4"


# --------------------------------------------------------------------------------------------- create_model


def list_models(pretrained: bool = False) -> list[str]:
    """Names accepted by :func:`create_model`; with ``pretrained=True`` only those that have weights."""
    if pretrained:
        have = set(variants_with_weights())
        return [n for n in list_variants() if n in have]
    return list_variants()


def weights_argument(weights: Any, checkpoint: Any, pretrained: Any, where: str) -> Any:
    """``checkpoint=`` and ``pretrained=`` are the former spellings of ``weights=`` (kept for one release)."""
    given = [n for n, v in (("weights", weights), ("checkpoint", checkpoint), ("pretrained", pretrained))
             if v not in (None, False)]
    if len(given) > 1:
        raise ValueError(f"{where}: give weights= only (a tag, a path or True), not both {' and '.join(given)}")
    for old, value in (("checkpoint", checkpoint), ("pretrained", pretrained)):
        if value not in (None, False):
            warnings.warn(f"{where}: {old}= is deprecated, use weights= (a tag, a path, or True for the default tag)",
                          DeprecationWarning, stacklevel=3)
            return value
    return weights


def _is_path(value: Any) -> bool:
    text = str(value)
    return isinstance(value, Path) or "/" in text or "\\" in text or Path(text).suffix.lower() in (
        *WEIGHT_SUFFIXES, ONNX_SUFFIX)


def create_model(
    name: str,
    weights: str | Path | bool | None = None,
    *,
    checkpoint: str | Path | None = None,
    pretrained: bool | str = False,
    **overrides: Any,
) -> TransPose:
    """Build variant ``name`` (see :func:`list_models`), optionally with weights.

    ``weights``: None (random initial weights), True (the variant's default tag), a tag of the weights
    registry (``"coco-256x192"``, ``"lsp-mpii-128x96"``, see ``tpose weights``; downloaded once into the torch
    hub cache) or the path of a released ``.pth`` or a tpose ``.safetensors``, loaded strictly (a file
    that does not fit lists its missing and unexpected keys). ``overrides`` change the architecture:
    ``num_keypoints``, ``d_model``, ``num_layers``, ``num_heads``, ``dim_feedforward``, ``pos_embedding``
    (``sine``/``learnable``/``none``), ``dropout``, ``backbone`` (e.g. ``resnet_s_star``), ``input_size``.
    ``checkpoint=``/``pretrained=`` are the deprecated spellings of ``weights=``.
    """
    weights = weights_argument(weights, checkpoint, pretrained, "create_model")
    if weights in (None, False):
        return build_model(name, **overrides)
    if isinstance(weights, Mapping):  # a state dict in memory
        model = build_model(name, **overrides)
        load_weights(model, weights)
        return model
    if weights is True or not _is_path(weights):
        return load_pretrained(name, weights, **overrides)
    model = build_model(name, **overrides)
    load_weights(model, weights)
    return model


def load_pretrained(variant: str, tag: str | bool | None = True, *, offline: bool | None = None,
                    progress: bool = True, **overrides: Any) -> TransPose:
    """``variant`` with its registered weights ``tag`` loaded strictly (downloaded once when needed).

    The architecture is the one the weights fit (tpose metadata, else the entry's overrides);
    ``overrides`` may change what the weights do not fix (``dropout``, the ``input_size`` it runs at).
    ``model.metadata`` records the weights' name, file and keypoint set.
    """
    entry = get_weights(variant, tag, offline=offline)
    path = resolve_weights(variant, entry.tag, offline=offline, progress=progress)
    metadata = read_metadata(path)
    model = model_for(entry, metadata, **overrides)
    try:
        load_weights(model, path, strict=True)
    except CheckpointError as err:
        if path == cache_path(entry):
            raise with_note(err, f"\n  (cached file {path}: delete it to download it again)") from err
        raise
    meta = dict(metadata or {})
    meta.setdefault("variant", entry.variant)
    meta.setdefault("keypoint_set", entry.keypoint_set)
    meta.update({"weights": entry.name, "weights_file": str(path), "model": model.config.to_dict()})
    model.metadata = meta
    return model


def resolve_weights_path(weights: str | Path | bool, model: str | None = None, **kwargs: Any) -> Path:
    """What a ``weights=`` / ``--weights`` value names, as a file: a path, a tag of ``model`` (or of the one
    variant that has it), ``variant:tag``, or True for ``model``'s default tag."""
    if weights is True:
        return resolve_weights(model or DEFAULT_MODEL, True, **kwargs)
    text = str(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if _is_path(weights):
        raise FileNotFoundError(f"{text}: no such weights file")
    if ":" in text:
        variant, tag = text.split(":", 1)
        return resolve_weights(variant, tag, **kwargs)
    if model is None:
        owners = tag_owners(text)
        if len(owners) != 1:
            known = sorted({e.tag for e in list_weights()})
            raise ValueError(f"weights {text!r}: " + (f"several models have this tag ({', '.join(owners)}); name one "
                             f"(e.g. {owners[0]}:{text} or --model {owners[0]})" if owners else
                             f"no such file, and not a weights tag (known tags: {', '.join(known)})"))
        model = owners[0]
    if model not in list_variants():
        raise ValueError(f"unknown model {model!r}; available: {', '.join(list_variants())}")
    if text not in tags(model) and (model, text) not in FORMER_TAGS:
        known = ", ".join(tags(model)) or "none"
        raise ValueError(f"{text}: no such weights file, and not a weights tag of {model} (its tags: {known})")
    return resolve_weights(model, text, **kwargs)


def shipped_weights(variant: str = DEFAULT_MODEL) -> Path:
    """The weights file tpose ships for ``variant`` (no download); what the CLI uses without --weights."""
    tag = shipped_tag(variant)
    if tag is None:
        raise FileNotFoundError(f"no weights ship with tpose for {variant}: pass --weights (see `tpose weights`)")
    return resolve_weights(variant, tag, offline=True)


# --------------------------------------------------------------------------------------------- the loader


@dataclass
class LoadedModel:
    """A ready model and what it needs to be used: its keypoint set, input size, codec and metadata."""

    model: nn.Module  # TransPose or OnnxPoseModel, in eval mode, on ``device``
    keypoint_set: KeypointSet
    input_size: tuple[int, int]  # (H, W) the model is run at
    backend: str  # "torch" | "onnxruntime"
    name: str  # the variant (or the file's name when it names none)
    weights: str | None  # the weights file, or None for random initial weights
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def codec(self) -> HeatmapCodec:
        return HeatmapCodec(self.input_size, stride=int(getattr(self.model, "heatmap_stride", 4)))


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda[:n]``; CUDA on a machine without it is a clear error."""
    text = str(device)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise ValueError(f"--device {text!r} is not a device: use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {text}: {why}; use --device cpu (or install a CUDA build of PyTorch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def _file_variant(path: Path, metadata: Mapping[str, Any] | None) -> str | None:
    """The variant a weights file holds: its metadata's, else read off a released state dict's tensors."""
    if metadata:
        if metadata.get("variant"):
            return str(metadata["variant"])
        model = metadata.get("model")
        if isinstance(model, Mapping):
            try:
                return variant_name(ModelConfig.from_dict(dict(model)))
            except (TypeError, ValueError):
                return None
    if path.suffix in (".pth", ".pt"):
        try:
            fields = read_structure(read_state_dict(path))
        except CheckpointError:
            return None
        if fields is not None:
            name, over = closest_variant(fields)
            return name if not set(over) - {"num_keypoints", "pos_embedding"} else None
    return None


def _tag_variant(weights: Any) -> str | None:
    """The variant a weights tag names (``variant:tag``, or a tag only one variant has); None for paths."""
    if weights is True or _is_path(weights) or Path(str(weights)).expanduser().is_file():
        return None
    text = str(weights)
    if ":" in text:
        return text.split(":", 1)[0]
    owners = tag_owners(text)
    return owners[0] if len(owners) == 1 else None


def _check_variant(asked: str | None, path: Path, found: str | None, tag: Any = None) -> None:
    if asked is None or found is None or asked == found:
        return
    if tag is not None:
        raise ValueError(f"weights {tag!r} are {asked} weights, but the file found for them, {path}, holds {found} "
                         "weights: delete or replace that file (a download puts the right one there)")
    raise ValueError(f"model {asked!r} was asked for, but {path} holds {found} weights: drop --model/model= to use "
                     f"the file's own architecture, or give {asked} weights")


def _backend(backend: str | None, path: Path | None) -> str:
    is_onnx = path is not None and path.suffix.lower() == ONNX_SUFFIX
    if backend is None:
        return "onnxruntime" if is_onnx else "torch"
    name = "onnxruntime" if backend in ("onnx", "onnxruntime", "ort") else backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be torch or onnxruntime, got {backend!r}")
    if path is not None and is_onnx and name == "torch":
        raise ValueError(f"{path} is an ONNX model: run it with --backend onnxruntime (or leave --backend out: "
                         "the .onnx suffix picks it)")
    if path is not None and not is_onnx and name == "onnxruntime":
        raise ValueError(f"--backend onnxruntime needs an exported .onnx file, got {path} (export it with "
                         f"`tpose export --weights {path}`, or use --backend torch)")
    return name


def load_pose_model(
    model: str | Path | nn.Module | None = None,
    weights: str | Path | bool | None = None,
    *,
    backend: str | None = None,
    device: str | torch.device = "cpu",
    input_size: tuple[int, int] | None = None,
    keypoint_set: str | Path | KeypointSet | None = None,
    threads: int | None = None,
) -> LoadedModel:
    """A ready pose model from a name, a tag, a file or a module (see the module doc for the priority).

    ``model``: a variant name, a weights or ``.onnx`` path, or an ``nn.Module``; ``weights``: a tag, a path
    or True (the default tag); both None: the weights shipped with tpose. ``backend``: torch or
    onnxruntime (default: from the file's suffix). ``threads``: ONNX Runtime's intra-op threads.
    """
    dev = resolve_device(device)
    if isinstance(model, nn.Module):
        return _from_module(model, weights, dev, input_size, keypoint_set)
    asked: str | None = None
    path: Path | None = None
    if model is not None:
        text = str(model)
        if text in list_variants():
            asked = text
        elif Path(text).expanduser().is_file() or _is_path(model):
            if weights not in (None, False):
                raise ValueError(f"model {text!r} is a weights file already; do not also pass weights={weights!r}")
            path = Path(text).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such weights or ONNX file")
        else:
            raise ValueError(f"unknown model {text!r}: use one of {', '.join(list_variants())}, a weights file "
                             "(.safetensors/.pth) or an exported .onnx")
    tag = None
    if path is None and weights not in (None, False):
        path = resolve_weights_path(weights, asked)
        if _tag_variant(weights) is not None:  # a tag names its variant: the file found for it must hold it
            asked, tag = asked or _tag_variant(weights), weights
    elif path is None and weights is None and asked is None:
        path = shipped_weights(DEFAULT_MODEL)
    chosen = _backend(backend, path)
    if chosen == "onnxruntime":
        assert path is not None
        return _from_onnx(path, asked, dev, input_size, keypoint_set, threads, tag)
    if path is None:  # a name and no weights: random initial weights
        assert asked is not None
        warnings.warn(f"no weights given: {asked} has random initial weights (pass weights=, see `tpose weights`)",
                      stacklevel=2)
        net = build_model(asked, **({"input_size": tuple(input_size)} if input_size else {}))
        kset = resolve_keypoint_set(keypoint_set, None, net.config.num_keypoints, asked)
        return _ready(net, kset, tuple(net.config.input_size), "torch", asked, None, dev, {})
    return _from_weights(path, asked, dev, input_size, keypoint_set, tag)


def _from_weights(path: Path, asked: str | None, dev: torch.device, input_size: tuple[int, int] | None,
                  keypoint_set: Any, tag: Any = None) -> LoadedModel:
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ValueError(f"{path}: not a weights file (.safetensors, .pth or .pt) or an .onnx export")
    metadata = read_metadata(path)
    found = _file_variant(path, metadata)
    _check_variant(asked, path, found, tag)
    if metadata and isinstance(metadata.get("model"), Mapping) or asked is None:
        net = load_model(path)  # the architecture the file records (or reads off its tensors)
    else:
        net = build_model(asked)  # a released file of the asked variant: strict load, keypoints from the file
        state = read_state_dict(path)
        k = state["final_layer.weight"].shape[0] if "final_layer.weight" in state else None
        if k is not None and k != net.config.num_keypoints:
            net = build_model(asked, num_keypoints=int(k))
        load_weights(net, path)
        net.metadata = dict(metadata or {})
    meta = dict(getattr(net, "metadata", None) or {})
    name = str(meta.get("variant") or found or asked or path.stem)
    size = tuple(input_size) if input_size else tuple(net.config.input_size)
    net._check_size(*size)  # a size the backbone cannot take fails here, naming the sizes that work
    kset = resolve_keypoint_set(keypoint_set, meta, net.config.num_keypoints, str(path))
    meta.setdefault("weights_file", str(path))
    return _ready(net, kset, size, "torch", name, str(path), dev, meta)


def _from_onnx(path: Path, asked: str | None, dev: torch.device, input_size: tuple[int, int] | None,
               keypoint_set: Any, threads: int | None, tag: Any = None) -> LoadedModel:
    net = OnnxPoseModel(path, threads=threads, device=str(dev))
    _check_variant(asked, path, net.metadata.get("variant"), tag)
    if input_size is not None and tuple(input_size) != net.input_size:
        h, w = net.input_size
        raise ValueError(f"{path} was exported for {h}x{w} inputs, not {input_size[0]}x{input_size[1]}: leave "
                         f"--input-size out, or export again with `tpose export --input-size "
                         f"{input_size[0]}x{input_size[1]}`")
    kset = resolve_keypoint_set(keypoint_set, net.metadata, net.num_keypoints, str(path))
    name = str(net.metadata.get("variant") or path.stem)
    meta = {**net.metadata, "weights_file": str(path)}
    return LoadedModel(net, kset, net.input_size, "onnxruntime", name, str(path), dev, meta)


def _from_module(model: nn.Module, weights: Any, dev: torch.device, input_size: tuple[int, int] | None,
                 keypoint_set: Any) -> LoadedModel:
    meta = dict(getattr(model, "metadata", None) or {})
    if weights not in (None, False):
        path = resolve_weights_path(weights, getattr(model, "variant", None))
        load_weights(model, path)  # type: ignore[arg-type]
        meta.update(read_metadata(path) or {})
    if isinstance(model, OnnxPoseModel):
        return _from_onnx(model.path, None, dev, input_size, keypoint_set, None)
    config = getattr(model, "config", None)
    size = tuple(input_size) if input_size else (tuple(config.input_size) if config is not None else None)
    if size is None:
        raise ValueError("input_size (H, W) is needed: the model does not record the size it runs at")
    count = int(config.num_keypoints) if config is not None else None
    if count is None:
        if keypoint_set is None:
            raise ValueError("keypoint_set is needed: the model does not say how many keypoints it predicts")
        kset = get_keypoint_set(keypoint_set)
    else:
        kset = resolve_keypoint_set(keypoint_set, meta, count, type(model).__name__)
    name = str(meta.get("variant") or (variant_name(config) if config is not None else None) or type(model).__name__)
    return _ready(model, kset, size, "torch", name, meta.get("weights_file"), dev, meta)


def _ready(net: nn.Module, kset: KeypointSet, size: tuple[int, ...], backend: str, name: str,
           weights: str | None, dev: torch.device, meta: dict[str, Any]) -> LoadedModel:
    net.to(dev).eval()
    return LoadedModel(net, kset, (int(size[0]), int(size[1])), backend, name, weights, dev, meta)
