"""Where architectures, weights and files meet: ``create_model``, ``list_models`` and the one loader.

``load_pose_model`` turns a variant name, a weights tag, a weights file (tpose ``.safetensors``, a
released ``.pth``) or an exported ``.onnx`` into a ready model with its keypoint set, input size and
metadata. What decides each of them, in this order (as MMPose's ``init_model`` states its own):

1. an explicit argument that only *refines* the weights wins: ``input_size`` of a model whose position
   table adapts (any size its backbone divides), ``keypoint_set`` names for the same keypoint count;
2. the weights' own metadata fills the rest (architecture, keypoint set, the size they were trained at);
   a released ``.pth`` without metadata is read off its tensors;
3. then defaults: the variant's architecture, the built-in keypoint set of that count.

Resolving is one pass: :func:`locate` turns the name, tag or path into a file (and the registry entry
that named it), ``tpose.models.checkpoint.load_model`` reads the file and its metadata once and builds the
model it records; the diagnosis is consulted only when a file does not fit. :func:`shipped_weights` alone
decides the weights used when none are given.

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
    BuildSpec,
    CheckpointError,
    VariantMismatchError,
    load_model,
    load_weights,
    read_metadata,
    variant_name,
)
from .models.onnx_model import OnnxPoseModel
from .models.transpose import TransPose
from .models.variants import build_model, list_variants
from .weights.catalog import WeightsEntry, find
from .weights.download import fetch, with_note
from .weights.files import cache_path, get_weights, shipped_file, variants_with_weights

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


def _is_path(value: Any) -> bool:
    text = str(value)
    return isinstance(value, Path) or "/" in text or "\\" in text or Path(text).suffix.lower() in (
        *WEIGHT_SUFFIXES, ONNX_SUFFIX)


@dataclass(frozen=True)
class Located:
    """A weights file, and the registry entry that named it (None for a file given by its path)."""

    path: Path
    entry: WeightsEntry | None = None


def locate(weights: str | Path | bool, model: str | None = None, **fetch_options: Any) -> Located:
    """The one step from a ``weights=`` / ``--weights`` value to a file: a path, True (``model``'s default tag),
    ``variant:tag``, or a tag of ``model`` (or of the one variant that has it). ``fetch_options`` go to
    :func:`tpose.weights.fetch` (``offline``, ``progress``, ``base_url``...)."""
    if weights is True:
        entry = get_weights(model or DEFAULT_MODEL, True, offline=fetch_options.get("offline"))
        return Located(fetch(entry, **fetch_options), entry)
    text = str(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return Located(path)
    if _is_path(weights):
        if path.is_dir():
            raise IsADirectoryError(f"{text} is a folder: give the weights file in it (.safetensors, .pth or .onnx)")
        raise FileNotFoundError(f"{text}: no such weights file")
    entry = find(text, model)  # the catalog settles variant and tag in one call
    return Located(fetch(entry, **fetch_options), entry)


def _build(found: Located, asked: str | None = None, overrides: Mapping[str, Any] | None = None) -> TransPose:
    """File -> its metadata -> model, strictly loaded; a file of another variant than asked (or than its tag
    names) is refused, naming the variant it holds."""
    over = dict(overrides or {})
    entry = found.entry  # a tag's entry says what a file without metadata is (build_spec's rule, without a call)
    spec = BuildSpec(entry.variant, dict(entry.model_overrides), over) if entry else BuildSpec(asked, overrides=over)
    try:
        return load_model(found.path, spec=spec)
    except VariantMismatchError as err:
        if err.found is None or err.found == err.asked:
            raise _cache_note(err, found) from None
        if found.entry is not None:
            raise ValueError(f"weights {found.entry.name!r} are {err.asked} weights, but the file found for them, "
                             f"{found.path}, holds {err.found} weights: delete or replace that file (a download puts "
                             "the right one there)") from None
        raise ValueError(f"model {err.asked!r} was asked for, but {found.path} holds {err.found} weights: drop "
                         f"--model/model= to use the file's own architecture, or give {err.asked} weights") from None
    except CheckpointError as err:
        raise _cache_note(err, found) from None


def _cache_note(err: CheckpointError, found: Located) -> CheckpointError:
    """A file from the download cache that does not load: say so, and how to get it again (asked only on error)."""
    if found.entry is None or found.path != cache_path(found.entry):
        return err
    return with_note(err, f"\n  (cached file {found.path}: delete it to download it again)")


def create_model(name: str, weights: str | Path | bool | Mapping[str, Any] | None = None,
                 **overrides: Any) -> TransPose:
    """Build variant ``name`` (see :func:`list_models`), optionally with weights.

    ``weights``: None (random initial weights), True (the variant's default tag), a tag of the weights
    registry (``"coco-256x192"``, ``"lsp-mpii-128x96"``, see ``tpose weights``; downloaded once into the torch
    hub cache), the path of a released ``.pth`` or a tpose ``.safetensors``, or a state dict, loaded strictly
    (a file that does not fit lists its missing and unexpected keys). ``overrides`` change the architecture:
    ``num_keypoints``, ``d_model``, ``num_layers``, ``num_heads``, ``dim_feedforward``, ``pos_embedding``
    (``sine``/``learnable``/``none``), ``dropout``, ``backbone`` (e.g. ``resnet_s_star``), ``input_size``.
    """
    if weights is None or weights is False:
        return build_model(name, **overrides)
    if isinstance(weights, Mapping):  # a state dict in memory
        model = build_model(name, **overrides)
        load_weights(model, weights)
        return model
    return _build(locate(weights, name), name, overrides)


def load_pretrained(variant: str, tag: str | bool | None = True, *, offline: bool | None = None,
                    progress: bool = True, **overrides: Any) -> TransPose:
    """``variant`` with its registered weights ``tag`` loaded strictly (downloaded once when needed).

    The architecture is the one the weights fit (tpose metadata, else the entry's overrides);
    ``overrides`` may change what the weights do not fix (``dropout``, the ``input_size`` it runs at).
    ``model.metadata`` records the weights' name, file and keypoint set.
    """
    entry = get_weights(variant, tag, offline=offline)
    found = Located(fetch(entry, offline=offline, progress=progress), entry)
    model = _build(found, variant, overrides)
    meta = dict(model.metadata)
    meta.setdefault("keypoint_set", entry.keypoint_set)
    meta.update({"variant": meta.get("variant") or entry.variant, "weights": entry.name,
                 "weights_file": str(found.path), "model": model.config.to_dict()})
    model.metadata = meta
    return model


def resolve_weights_path(weights: str | Path | bool, model: str | None = None, **fetch_options: Any) -> Path:
    """What a ``weights=`` / ``--weights`` value names, as a file (see :func:`locate`)."""
    return locate(weights, model, **fetch_options).path


def shipped_weights(variant: str | None = None) -> Path:
    """The default weights: those tpose ships for ``variant`` (default :data:`DEFAULT_MODEL`), no download.

    What ``tpose.load_pose_model()`` and every CLI command without ``--weights`` use; the one place that
    decides it.
    """
    variant = variant or DEFAULT_MODEL
    path = shipped_file(variant)
    if path is None:
        raise FileNotFoundError(f"no weights ship with tpose for {variant}: pass --weights (see `tpose weights`)")
    return path


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


def _check_variant(asked: str | None, path: Path, found: str | None) -> None:
    if asked is not None and found is not None and asked != found:
        raise ValueError(f"model {asked!r} was asked for, but {path} holds {found} weights: drop --model/model= to "
                         f"use the file's own architecture, or give {asked} weights")


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
    found: Located | None = None
    if model is not None:
        text = str(model)
        if text in list_variants():
            asked = text
        elif Path(text).expanduser().is_file() or _is_path(model):
            if weights not in (None, False):
                raise ValueError(f"model {text!r} is a weights file already; do not also pass weights={weights!r}")
            found = Located(Path(text).expanduser())
            if not found.path.is_file():
                raise FileNotFoundError(f"{found.path}: no such weights or ONNX file")
        else:
            raise ValueError(f"unknown model {text!r}: use one of {', '.join(list_variants())}, a weights file "
                             "(.safetensors/.pth) or an exported .onnx")
    if found is None and weights not in (None, False):
        found = locate(weights, asked)  # type: ignore[arg-type]
    elif found is None and weights is None and asked is None:
        found = Located(shipped_weights())
    chosen = _backend(backend, found.path if found else None)
    if chosen == "onnxruntime":
        assert found is not None
        return _from_onnx(found.path, asked, dev, input_size, keypoint_set, threads)
    if found is None:  # a name and no weights: random initial weights
        assert asked is not None
        warnings.warn(f"no weights given: {asked} has random initial weights (pass weights=, see `tpose weights`)",
                      stacklevel=2)
        net = build_model(asked, **({"input_size": tuple(input_size)} if input_size else {}))
        kset = resolve_keypoint_set(keypoint_set, None, net.config.num_keypoints, asked)
        return _ready(net, kset, tuple(net.config.input_size), "torch", asked, None, dev, {})
    return _from_weights(found, asked, dev, input_size, keypoint_set)


def _from_weights(found: Located, asked: str | None, dev: torch.device, input_size: tuple[int, int] | None,
                  keypoint_set: Any) -> LoadedModel:
    path = found.path
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ValueError(f"{path}: not a weights file (.safetensors, .pth or .pt) or an .onnx export")
    net = _build(found, asked)
    meta = dict(net.metadata)
    name = str(meta.get("variant") or getattr(net, "variant", None) or path.stem)
    size = tuple(input_size) if input_size else tuple(net.config.input_size)
    net._check_size(*size)  # a size the backbone cannot take fails here, naming the sizes that work
    kset = resolve_keypoint_set(keypoint_set, meta, net.config.num_keypoints, str(path))
    meta.setdefault("weights_file", str(path))
    return _ready(net, kset, size, "torch", name, str(path), dev, meta)


def _from_onnx(path: Path, asked: str | None, dev: torch.device, input_size: tuple[int, int] | None,
               keypoint_set: Any, threads: int | None) -> LoadedModel:
    net = OnnxPoseModel(path, threads=threads, device=str(dev))
    _check_variant(asked, path, net.metadata.get("variant"))
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
        path = locate(weights, getattr(model, "variant", None)).path
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
