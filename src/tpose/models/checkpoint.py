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

from ..data.keypoint_sets import (
    BUILTIN,
    KeypointSet,
    default_keypoint_set,
    get_keypoint_set,
    keypoint_set_from_metadata,
)
from ..data.records import JointMap, joint_sources
from ..utils.files import atomic_write, read_sidecar
from .config import ModelConfig
from .diagnosis import (
    CheckpointError,
    CheckpointMismatchError,
    StateDict,
    VariantMismatchError,
    built_with,
    diagnose,
    guess_variant,
    infer_config,
    mismatch_message,
    shape_diff,
    variant_name,
)
from .position_encoding import grid_candidates, resize_learnable, sine_grid
from .transpose import TransPose
from .variants import get_config

log = logging.getLogger(__name__)

Source = str | Path | Mapping[str, Any]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_LIST_LIMIT = 8

__all__ = [
    "BuildSpec",
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "VariantMismatchError",
    "guess_variant",
    "load_model",
    "load_weights",
    "read_metadata",
    "read_state_dict",
    "save_released_layout",
    "save_weights",
    "variant_name",
]


HEAD_KEYS = ("final_layer.weight", "final_layer.bias")  # one channel per keypoint: moved by joint name


@dataclass
class LoadReport:
    """What :func:`load_weights` did; with ``strict=False`` the lists say what was left out. A load by joint
    name (``keypoint_set=``) also says where each keypoint's final-layer channel came from."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    trained_input_size: tuple[int, int] | None = None
    source: str = ""
    joint_sets: tuple[str, str] | None = None  # (the file's keypoint set, the model's) for a load by joint name
    copied: list[str] = field(default_factory=list)  # joints whose channel came from the same name
    mapped: dict[str, list[str]] = field(default_factory=dict)  # joint -> the file's joints averaged for it
    fresh: list[str] = field(default_factory=list)  # joints that keep their initial channel
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """A few lines for a run's log: tensors loaded, and per joint where its channel came from."""
        head = f"weights {self.source}: {len(self.loaded)} tensors loaded"
        if self.joint_sets is not None:
            head += f", keypoints {self.joint_sets[0]} -> {self.joint_sets[1]}"
        lines = [head] + [f"  {n}" for n in self.notes]
        if self.joint_sets is not None:
            lines.append(f"  joints copied by name ({len(self.copied)}): {', '.join(self.copied) or '-'}")
            if self.mapped:
                shown = [f"{k} <- mean({', '.join(v)})" if len(v) > 1 else f"{k} <- {v[0]}"
                         for k, v in self.mapped.items()]
                lines.append(f"  joints mapped by joint_map ({len(self.mapped)}): {'; '.join(shown)}")
            lines.append(f"  joints starting fresh ({len(self.fresh)}): {', '.join(self.fresh) or '-'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class BuildSpec:
    """What a caller knows about the model a file is for, beyond the file's own metadata.

    ``variant``: the variant asked for, or the one a weights tag names (a file holding another is refused);
    ``defaults``: the architecture of a file without metadata (a registry entry's ``model_overrides``);
    ``overrides``: what the caller changes on top of the file's architecture (``dropout``, ``input_size``).
    """

    variant: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)


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
            raise CheckpointError(_unreadable_safetensors(path, e)) from e
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


def _unreadable_safetensors(path: Path, err: Exception) -> str:
    """What a .safetensors file that does not parse most likely is, and what to do about it."""
    return (f"{path}: the file is truncated or not a safetensors file ({err}); export or download it again "
            f"(a copy cut short, e.g. by a full disk or an interrupted transfer, looks like this)")


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
            raise CheckpointError(_unreadable_safetensors(path, e)) from e
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


def load_weights(
    model: TransPose,
    source: Source,
    strict: bool = True,
    keypoint_set: str | Path | KeypointSet | None = None,
    joint_map: JointMap | None = None,
) -> LoadReport:
    """Load released ``.pth`` or tpose ``.safetensors`` weights (or a state dict) into ``model``.

    Tolerates ``{"state_dict": ...}``/``{"model": ...}`` wrappers and a DDP ``module.`` prefix. With
    ``strict`` any missing/unexpected key or shape mismatch raises :class:`CheckpointMismatchError`;
    otherwise the entries that fit are loaded and the report lists the rest.

    ``keypoint_set`` (the model's) loads weights of another keypoint set by joint name, to fine-tune onto
    one's own keypoints: every tensor that fits loads, each keypoint's final-layer channel comes from the
    file's joint of the same name, or from those ``joint_map`` names (a list is averaged, as in a data set's
    ``joint_map``), and the other keypoints keep their initial channel. A file trained at another input size
    or without a final layer is fine; another architecture is the same error as a strict load.
    ``report.summary()`` says which joints came from where.
    """
    state, metadata = _read(source)
    if keypoint_set is not None:
        return _load_by_joint_name(model, state, metadata, _label(source), get_keypoint_set(keypoint_set),
                                   joint_map)
    return _load_state(model, state, metadata, _label(source), strict)


def _load_by_joint_name(model: TransPose, state: StateDict, metadata: Mapping[str, Any] | None, label: str,
                        target: KeypointSet, joint_map: JointMap | None) -> LoadReport:
    if target.num_keypoints != model.config.num_keypoints:
        raise ValueError(f"keypoint set {target.name!r} has {target.num_keypoints} keypoints but the model predicts "
                         f"{model.config.num_keypoints}")
    own = model.state_dict()
    want = {k: tuple(v.shape) for k, v in own.items() if k not in HEAD_KEYS}
    body = {k: tuple(v.shape) for k, v in state.items() if k not in HEAD_KEYS}
    missing, unexpected, mismatched = shape_diff(body, want, any_grid=True)
    head = state.get(HEAD_KEYS[0])
    if head is not None and tuple(head.shape[1:]) != tuple(own[HEAD_KEYS[0]].shape[1:]):
        mismatched.append((HEAD_KEYS[0], tuple(head.shape), tuple(own[HEAD_KEYS[0]].shape)))
    if missing or unexpected or mismatched:  # another architecture: the error of a strict load
        guess = guess_variant(state, metadata)
        message = mismatch_message(label, model.config, missing, unexpected, mismatched, guess)
        raise CheckpointMismatchError(message, missing, unexpected, mismatched, guess)
    report = LoadReport(source=label.strip("'"))
    usable = {k: v for k, v in state.items() if k in want}
    table = usable.get("pos_embedding")
    if table is not None and table.shape != own["pos_embedding"].shape:
        del usable["pos_embedding"]
        grid = _trained_grid(model, table, metadata)
        if model.config.pos_embedding == "learnable" and grid is not None:
            usable["pos_embedding"] = resize_learnable(table, grid, model.position.grid_hw)
            report.notes.append(f"position table resized from a {grid[0]}x{grid[1]} grid to "
                                f"{model.position.grid_hw[0]}x{model.position.grid_hw[1]}")
        else:
            report.notes.append("position table: the model's own (the file's is for another input size)")
    if head is None:
        source_set = keypoint_set_from_metadata(metadata)
        report.notes.append("the file has no final layer: every keypoint starts fresh")
    else:
        source_set = keypoint_set_from_metadata(metadata) or default_keypoint_set(head.shape[0])
        usable.update(_head_by_name(own, state, source_set, target, joint_map, report))
    report.joint_sets = (source_set.name if source_set else "none", target.name)
    if head is None:
        report.fresh = list(target.names)
    model.load_state_dict(usable, strict=False)
    report.loaded = [k for k in usable if k not in HEAD_KEYS]
    return report


def _head_by_name(own: StateDict, state: StateDict, source: KeypointSet, target: KeypointSet,
                  joint_map: JointMap | None, report: LoadReport) -> StateDict:
    """The model's final-layer tensors with each keypoint's channel taken from the file's joints it maps to."""
    if state[HEAD_KEYS[0]].shape[0] != source.num_keypoints:
        raise CheckpointError(f"the file's final layer predicts {state[HEAD_KEYS[0]].shape[0]} keypoints but its "
                              f"metadata names the {source.num_keypoints} of {source.name!r}")
    out = {k: own[k].detach().clone() for k in HEAD_KEYS if k in own}
    named = dict(joint_map or {})
    for i, (name, idx) in enumerate(zip(target.names, joint_sources(source, target, named), strict=True)):
        if not idx:
            report.fresh.append(name)
            continue
        for key, tensor in out.items():
            if key in state:
                tensor[i] = state[key][idx].to(tensor.dtype).mean(dim=0)
        if name in named:
            report.mapped[name] = [source.names[j] for j in idx]
        else:
            report.copied.append(name)
    return out


def _load_state(model: TransPose, state: StateDict, metadata: Mapping[str, Any] | None, label: str, strict: bool,
                asked: str | None = None) -> LoadReport:
    """Load ``state`` into ``model``; a strict load of a file that does not fit raises the diagnosis' error
    (naming ``asked``, the variant the caller wanted, when there is one)."""
    table = state.get("pos_embedding")
    grid = _adoptable_grid(model, table, metadata) if isinstance(table, torch.Tensor) else None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if grid is not None:
        want["pos_embedding"] = tuple(table.shape)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    missing: list[str] = []
    unexpected: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    if shapes != want:  # a file that fits needs no diagnosis; one that does not, one call to it
        if strict:  # raised before the model is touched
            raise diagnose(label, model.config, state, metadata, want, asked)
        missing, unexpected, mismatched = shape_diff(shapes, want)
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

    The metadata records the variant the model was built as and its overrides (``model.variant``, set by
    ``build_model``; else the variant of the same architecture), so a file that does not fit is named exactly.

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
    extra.pop("overrides", None)  # always recomputed: a copied file's metadata may predate them
    variant, overrides = built_with(model.config, extra.pop("variant", None) or getattr(model, "variant", None))
    meta: dict[str, Any] = {
        "format": "tpose-weights",
        "model": model.config.to_dict(),
        "variant": variant,
        "overrides": overrides if variant else None,
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


def _current_model_entry(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A file's recorded architecture in today's key names: files that tpose wrote before 2026-12-03 call the
    input size (H, W) ``image_size``; they are the users' trained weights and must keep loading."""
    entry = dict(saved)
    if "image_size" in entry and "input_size" not in entry:
        entry["input_size"] = entry.pop("image_size")
    return entry


def load_model(path: str | Path, strict: bool = True, spec: BuildSpec | None = None) -> TransPose:
    """The model a weights file is for, with its weights loaded: file -> its metadata -> model, in one pass.

    The architecture is the one the metadata (saved by :func:`save_weights`) records; a file without it (a
    released ``.pth``) is built as ``spec.variant`` with ``spec.defaults`` and the keypoint count of its final
    layer, else as the variant read off its tensors. ``spec.overrides`` come last. A file of another variant
    than ``spec.variant`` raises :class:`VariantMismatchError` naming the one it holds. The metadata is kept
    as ``model.metadata``.
    """
    spec = spec or BuildSpec()
    state, metadata = _read(path)
    label = _label(path)
    saved = metadata.get("model") if metadata else None
    if isinstance(saved, Mapping):
        config = ModelConfig.from_dict(_current_model_entry(saved))
        name = (metadata or {}).get("variant") or variant_name(config)
        if spec.variant is not None and name is not None and name != spec.variant:
            raise VariantMismatchError(f"{label} holds {name} weights (its metadata says so), not {spec.variant}",
                                       spec.variant, str(name))
    elif spec.variant is not None:
        head = state.get(HEAD_KEYS[0])
        count = {"num_keypoints": int(head.shape[0])} if head is not None else {}
        name, config = spec.variant, get_config(spec.variant, **{**dict(spec.defaults), **count})
    else:
        name, config = infer_config(state, str(path))
    metadata = dict(metadata or {"variant": name, "keypoint_set": _keypoint_set_entry(None, config.num_keypoints)})
    metadata.setdefault("model", config.to_dict())
    model = TransPose(config.with_overrides(**dict(spec.overrides)))
    model.variant = name
    _load_state(model, state, metadata, label, strict, spec.variant)
    model.metadata = metadata
    return model
