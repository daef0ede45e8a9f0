"""Reading and writing TransPose weights: released ``.pth`` state dicts and our ``.safetensors`` + JSON.

Loading never guesses silently: a file that does not fit raises :class:`CheckpointMismatchError`, whose
message (``tpose.models.diagnosis``) lists what differs and names the variant the file belongs to.

The position table is the one exception to "shapes must match": ``pos_embedding`` holds the grid
the checkpoint was trained at, and the model adopts that grid (its ``config.input_size`` becomes
the trained size) because it adapts the table to any input size at run time anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..data.keypoint_sets import BUILTIN, KeypointSet
from ..utils.files import atomic_write, read_sidecar
from .config import ModelConfig
from .diagnosis import (
    CheckpointError,
    CheckpointMismatchError,
    StateDict,
    call_hint,
    closest_variant,
    describe_variant,
    grid_candidates,
    guess_variant,
    mismatch_message,
    read_structure,
    shape_diff,
    sine_grid,
    variant_name,
)
from .registry import get_config
from .transpose import TransPose

log = logging.getLogger(__name__)

Source = str | Path | Mapping[str, Any]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_LIST_LIMIT = 8

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "guess_variant",
    "load_model",
    "load_weights",
    "read_metadata",
    "read_state_dict",
    "save_released_layout",
    "save_weights",
    "variant_name",
]


@dataclass
class LoadReport:
    """What :func:`load_weights` did; with ``strict=False`` the lists say what was left out."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    trained_input_size: tuple[int, int] | None = None

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


# --------------------------------------------------------------------------------------------- reading


def _label(source: Source) -> str:
    return f"'{source}'" if isinstance(source, (str, Path)) else "the given state dict"


def _unwrap(obj: Any, label: str) -> StateDict:
    """Descend through training wrappers ({"state_dict": ...}, {"model": ...}) to the tensors."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            raise CheckpointError(
                f"checkpoint {label} is not a state dict: entries {bad[:_LIST_LIMIT]} are not tensors and no "
                f"{'/'.join(_WRAPPER_KEYS)} entry holds one"
            )
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {label} holds a {type(obj).__name__}, not a state dict")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _read(source: Source) -> tuple[StateDict, dict[str, Any] | None]:
    """The state dict and, for our safetensors files, the metadata saved with it."""
    if isinstance(source, Mapping):
        return _unwrap(source, _label(source)), None
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path), device="cpu")
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
        except Exception as e:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"could not read safetensors checkpoint {path}: {e}") from e
        meta = _sidecar(path)  # the JSON beside wins; the header copy covers a lost JSON
        if meta is None and "tpose" in header:
            meta = json.loads(header["tpose"])
        return _unwrap(state, _label(source)), meta
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"could not read checkpoint {path}: {_load_failure(e)}") from e
    return _unwrap(obj, _label(source)), None


def _load_failure(e: Exception) -> str:
    """torch.load's reason in one line (its weights_only message is a page long)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0].strip()
        return (
            f"it is not a plain tensor file ({reason}); a corrupt file, or a pickle holding objects other than "
            "tensors and containers (re-save just the state dict)"
        )
    return f"{type(e).__name__}: {text.strip().splitlines()[0] if text.strip() else 'unreadable'}"


def _sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return read_sidecar(path)
    except ValueError as e:
        raise CheckpointError(str(e)) from None


def read_state_dict(source: Source) -> StateDict:
    """The bare state dict of a ``.pth``/``.pt``/``.safetensors`` file or an in-memory (wrapped) dict."""
    return _read(source)[0]


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The JSON saved by :func:`save_weights`: the ``<stem>.json`` beside the file, else a ``.safetensors``
    header's copy; None for files without (a released ``.pth``). Reads no tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    meta = _sidecar(path)
    if meta is None and path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
        except Exception as e:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"could not read safetensors checkpoint {path}: {e}") from e
        if "tpose" in header:
            meta = json.loads(header["tpose"])
    return meta


# --------------------------------------------------------------------------------------------- loading


def _trained_grid(model: TransPose, table: torch.Tensor, metadata: Mapping[str, Any] | None) -> tuple[int, int] | None:
    h, w = model.config.input_size
    candidates = grid_candidates(table.shape[0], model.backbone_stride, model.size_multiple, h / w)
    if not candidates:
        return None
    model_meta = (metadata or {}).get("model", {}) if isinstance(metadata, Mapping) else {}
    saved = model_meta.get("input_size", model_meta.get("image_size")) if isinstance(model_meta, Mapping) else None
    if saved:
        grid = (int(saved[0]) // model.backbone_stride, int(saved[1]) // model.backbone_stride)
        if grid in candidates:
            return grid
    # a sine table tells its grid; a learned one gets the factorisation closest to the model's aspect
    return sine_grid(table, candidates) or candidates[0]


def _adoptable_grid(
    model: TransPose, table: torch.Tensor, metadata: Mapping[str, Any] | None
) -> tuple[int, int] | None:
    """The checkpoint's trained grid when its position table differs from the model's in token count only."""
    stored = model.pos_embedding
    if stored is None or table.dim() != 3 or tuple(table.shape[1:]) != tuple(stored.shape[1:]):
        return None
    if table.shape[0] == stored.shape[0]:
        return None
    return _trained_grid(model, table, metadata)


def _adopt_grid(model: TransPose, grid: tuple[int, int]) -> None:
    """Give ``model`` a position table for ``grid`` (filled by the load) and the matching image size."""
    stored = model.pos_embedding
    shape = (grid[0] * grid[1], *stored.shape[1:])
    model.pos_embedding = nn.Parameter(
        torch.empty(shape, dtype=stored.dtype, device=stored.device), requires_grad=stored.requires_grad
    )
    model.position.grid_hw = grid
    model.position._cache.clear()
    size = (grid[0] * model.backbone_stride, grid[1] * model.backbone_stride)
    log.info("checkpoint position table is for %dx%d inputs; the model adapts it to other sizes", *size)
    model.config = model.config.with_overrides(input_size=size)


def load_weights(model: TransPose, source: Source, strict: bool = True) -> LoadReport:
    """Load released ``.pth`` or tpose ``.safetensors`` weights (or a state dict) into ``model``.

    Tolerates ``{"state_dict": ...}``/``{"model": ...}`` wrappers and a DDP ``module.`` prefix. With
    ``strict`` any missing/unexpected key or shape mismatch raises :class:`CheckpointMismatchError`;
    otherwise the entries that fit are loaded and the report lists the rest.
    """
    state, metadata = _read(source)
    return _load_state(model, state, metadata, _label(source), strict)


def _load_state(
    model: TransPose, state: StateDict, metadata: Mapping[str, Any] | None, label: str, strict: bool
) -> LoadReport:
    table = state.get("pos_embedding")
    grid = _adoptable_grid(model, table, metadata) if isinstance(table, torch.Tensor) else None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if grid is not None:
        want["pos_embedding"] = tuple(table.shape)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected, mismatched = shape_diff(shapes, want)
    if strict and (missing or unexpected or mismatched):  # raised before the model is touched
        guess = guess_variant(state, metadata)
        message = mismatch_message(label, model.config, missing, unexpected, mismatched, guess)
        raise CheckpointMismatchError(message, missing, unexpected, mismatched, guess)
    if grid is not None:
        _adopt_grid(model, grid)
    bad = {k for k, _, _ in mismatched}
    usable = {k: v for k, v in state.items() if k in want and k not in bad}
    model.load_state_dict(usable, strict=False)
    return LoadReport(
        loaded=list(usable),
        missing=missing,
        unexpected=unexpected,
        mismatched=mismatched,
        trained_input_size=model.config.input_size if grid is not None else None,
    )


# --------------------------------------------------------------------------------------------- saving


def _tpose_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tpose")
    except PackageNotFoundError:
        return "unknown"


def save_weights(
    model: TransPose,
    path: str | Path,
    extra_metadata: dict[str, Any] | None = None,
    storage_dtype: torch.dtype | None = None,
    keypoint_set: KeypointSet | None = None,
) -> Path:
    """Write ``path`` (.safetensors) and ``<stem>.json`` with the config; :func:`load_model` reads both.

    ``keypoint_set`` is recorded in full (default: a built-in set's name when the keypoint count is one's).

    ``storage_dtype`` (e.g. ``torch.float16``) stores floating-point tensors in that type, half the size
    for shipping; loading casts them back to the model's dtype.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"save_weights writes .safetensors files, got {path} (use save_released_layout for .pth)")
    extra = dict(extra_metadata or {})
    if "model" in extra:
        raise ValueError("extra_metadata must not contain 'model': it holds the architecture")
    meta: dict[str, Any] = {
        "format": "tpose-weights",
        "model": model.config.to_dict(),
        "variant": variant_name(model.config),
        "keypoint_set": _keypoint_set_entry(keypoint_set, model.config.num_keypoints),
        "tpose_version": _tpose_version(),
    }
    if storage_dtype is not None:
        if not storage_dtype.is_floating_point:
            raise ValueError(f"storage_dtype must be a floating-point type, got {storage_dtype}")
        meta["storage_dtype"] = str(storage_dtype).replace("torch.", "")
    meta.update(extra)
    try:
        text = json.dumps(meta, indent=2)
    except TypeError as e:
        raise ValueError(f"extra_metadata must be JSON-serialisable: {e}") from e
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if storage_dtype is not None:
        state = {k: v.to(storage_dtype) if v.is_floating_point() else v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"tpose": json.dumps(meta)}))
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text + "\n"))
    return path


def _keypoint_set_entry(keypoint_set: KeypointSet | None, num_keypoints: int) -> str | dict[str, Any] | None:
    """What the metadata records: a built-in set by name, any other in full, else the built-in of that count."""
    if keypoint_set is not None:
        return keypoint_set.name if BUILTIN.get(keypoint_set.name) == keypoint_set else keypoint_set.to_dict()
    return next((s.name for s in BUILTIN.values() if s.num_keypoints == num_keypoints), None)


def save_released_layout(model: TransPose, path: str | Path) -> Path:
    """A plain ``.pth`` state dict with the released key layout (loads into the original code)."""
    path = Path(path)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def load_model(path: str | Path, strict: bool = True) -> TransPose:
    """Rebuild the model saved by :func:`save_weights` (config from its JSON) and load its weights.

    A released ``.pth`` without metadata works too when its variant can be read off the weights.
    The metadata is kept as ``model.metadata``.
    """
    state, metadata = _read(path)
    if metadata and isinstance(metadata.get("model"), Mapping):
        config = ModelConfig.from_dict(dict(metadata["model"]))
    else:
        fields = read_structure(state)
        if fields is None:
            raise CheckpointError(
                f"{path} has no tpose metadata (<stem>.json) and is not a TransPose state dict; "
                f"{guess_variant(state) or ''}".rstrip("; ")
            )
        name, over = closest_variant(fields)
        custom = sorted(set(over) - {"num_keypoints", "pos_embedding"})
        if custom:
            raise CheckpointError(
                f"{path} has no tpose metadata and its architecture differs from every registered variant "
                f"(closest: {describe_variant(name, over, '')}); num_heads cannot be read from the weights, so "
                f"build it explicitly, e.g. {call_hint(name, over)[:-1]}, num_heads=...)"
            )
        size = {"input_size": fields["input_size"]} if "input_size" in fields else {}
        config = get_config(name, **over, **size)
        metadata = {"model": config.to_dict(), "variant": name,
                    "keypoint_set": _keypoint_set_entry(None, config.num_keypoints)}
    model = TransPose(config)
    _load_state(model, state, metadata, _label(path), strict)
    model.metadata = dict(metadata)
    return model
