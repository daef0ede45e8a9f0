"""Reading and writing TransPose weights: released ``.pth`` state dicts and our ``.safetensors`` + JSON.

Loading never guesses silently: when a file does not fit the model, :class:`CheckpointMismatchError`
lists what differs and names the registered variant the file most likely belongs to, so the
user can rebuild the right model instead of reading a wall of ``load_state_dict`` output.

The position table is the one exception to "shapes must match": ``pos_embedding`` holds the grid
the checkpoint was trained at, and the model adopts that grid (its ``config.image_size`` becomes
the trained size) because it adapts the table to any input size at run time anyway.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .position_encoding import sine_table
from .registry import get_config, variant_configs
from .transpose import TransPose

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
Source = str | Path | Mapping[str, Any]

# architecture fields compared when naming the closest registered variant
_ARCH_FIELDS = ("backbone", "d_model", "num_layers", "num_heads", "dim_feedforward", "num_keypoints", "pos_embedding")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_KEYPOINT_SET_BY_COUNT = {17: "coco17", 14: "lsp14", 16: "mpii16"}
_LIST_LIMIT = 8


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or used."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's keys or shapes do not fit the model; the message says how and what would fit."""

    def __init__(
        self,
        message: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        guess: str | None,
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.guess = guess


@dataclass
class LoadReport:
    """What :func:`load_weights` did; with ``strict=False`` the lists say what was left out."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    trained_image_size: tuple[int, int] | None = None

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
        from safetensors import safe_open
        from safetensors.torch import load_file

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
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"metadata file {side} is not valid JSON: {e}") from e


def read_state_dict(source: Source) -> StateDict:
    """The bare state dict of a ``.pth``/``.pt``/``.safetensors`` file or an in-memory (wrapped) dict."""
    return _read(source)[0]


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The JSON saved by :func:`save_weights` (the ``<stem>.json`` beside it, else the file's header)."""
    return _read(path)[1]


# --------------------------------------------------------------------------------------------- shapes


@lru_cache(maxsize=64)
def _expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a model's state dict, built on the meta device (no memory, no init cost)."""
    if config.pos_embedding == "sine":  # same key and shape; skips the sine table, slow to trace on meta
        config = config.with_overrides(pos_embedding="learnable")
    with torch.device("meta"):
        model = TransPose(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _same_shape(key: str, a: tuple[int, ...], b: tuple[int, ...], any_grid: bool) -> bool:
    if any_grid and key == "pos_embedding" and len(a) == len(b) == 3:
        return a[1:] == b[1:]  # the token count is the trained grid, which the model adapts
    return a == b


def _diff(
    have: Mapping[str, tuple[int, ...]], want: Mapping[str, tuple[int, ...]], any_grid: bool = False
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    mismatched = [(k, have[k], want[k]) for k in want if k in have and not _same_shape(k, have[k], want[k], any_grid)]
    return missing, unexpected, mismatched


def variant_name(config: ModelConfig) -> str | None:
    """The registered variant with exactly this architecture (keypoints and image size aside)."""
    keys = ("backbone", "d_model", "num_layers", "num_heads", "dim_feedforward")
    for name, cfg in sorted(variant_configs().items()):
        if all(getattr(cfg, k) == getattr(config, k) for k in keys):
            return name
    return None


# --------------------------------------------------------------------------------------------- guessing


def _grid_candidates(tokens: int, stride: int, multiple: int, aspect: float = 256 / 192) -> list[tuple[int, int]]:
    """Grids of ``tokens`` cells valid for the backbone, the ones closest to ``aspect`` (h/w) first."""
    grids = [
        (h, tokens // h)
        for h in range(1, tokens + 1)
        if tokens % h == 0 and (h * stride) % multiple == 0 and (tokens // h * stride) % multiple == 0
    ]
    return sorted(grids, key=lambda g: abs(math.log(g[0] / g[1] / aspect)))


def _sine_grid(table: torch.Tensor, candidates: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The grid whose sine table ``table`` is, if it is one."""
    d = table.shape[-1]
    if d % 4:
        return None
    for h, w in candidates:
        if torch.allclose(table.float().cpu(), sine_table(h, w, d), atol=1e-4):
            return h, w
    return None


def _structure(state: StateDict) -> dict[str, Any] | None:
    """The architecture fields a TransPose state dict reveals, or None if it is not one."""
    needed = ("reduce.weight", "final_layer.weight", "global_encoder.layers.0.linear1.weight")
    if any(k not in state for k in needed):
        return None
    if "transition1.0.0.weight" in state:
        backbone = f"hrnet_s_w{state['transition1.0.0.weight'].shape[0]}"
    elif "layer2.0.conv1.weight" in state:
        blocks = {int(k.split(".")[1]) for k in state if k.startswith("layer2.")}
        backbone = {4: "resnet_s", 10: "resnet_s_star"}.get(len(blocks), f"resnet_s with {len(blocks)} layer2 blocks")
    else:
        return None
    layers = {int(k.split(".")[2]) for k in state if k.startswith("global_encoder.layers.")}
    out: dict[str, Any] = {
        "backbone": backbone,
        "d_model": state["reduce.weight"].shape[0],
        "num_layers": len(layers),
        "dim_feedforward": state["global_encoder.layers.0.linear1.weight"].shape[0],
        "num_keypoints": state["final_layer.weight"].shape[0],
        "pos_embedding": "none",
    }
    table = state.get("pos_embedding")
    if table is not None and table.dim() == 3:
        stride, multiple = (8, 8) if backbone.startswith("resnet") else (4, 16)
        grid = _sine_grid(table, _grid_candidates(table.shape[0], stride, multiple))
        out["pos_embedding"] = "sine" if grid else "learnable"
        if grid:
            out["image_size"] = (grid[0] * stride, grid[1] * stride)
    return out


def _closest_variant(fields: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registered variant needing the fewest overrides to match ``fields`` (num_heads kept)."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for name, cfg in sorted(variant_configs().items()):
        overrides = {k: v for k, v in fields.items() if k in _ARCH_FIELDS and getattr(cfg, k) != v}
        if best is None or len(overrides) < best[0]:
            best = (len(overrides), name, overrides)
    assert best is not None
    return best[1], best[2]


def _describe(name: str, overrides: Mapping[str, Any], noun: str = "checkpoint") -> str:
    text = f"{name} {noun}".rstrip()
    if overrides:
        text += " with " + ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return text


def _call_hint(name: str, overrides: Mapping[str, Any]) -> str:
    args = "".join(f", {k}={v!r}" for k, v in overrides.items())
    return f'tpose.create_model("{name}", checkpoint=...{args})'


def guess_variant(state: StateDict, metadata: Mapping[str, Any] | None = None) -> str | None:
    """One sentence saying which model the weights belong to (None when nothing fits)."""
    if metadata and isinstance(metadata.get("model"), Mapping):
        try:
            cfg = ModelConfig.from_dict(dict(metadata["model"]))
        except (TypeError, ValueError):
            cfg = None
        if cfg is not None:
            name, over = _closest_variant({k: getattr(cfg, k) for k in _ARCH_FIELDS})
            return f"the file was saved from {_describe(name, over, '')}; build it with {_call_hint(name, over)}"
    if "fc.weight" in state and "layer4.0.conv1.weight" in state:
        return (
            "this looks like an ImageNet ResNet classifier, not a TransPose model; initialise a TransPose-R "
            "backbone from it with tpose.models.imagenet_init.init_backbone_from_imagenet"
        )
    if "classifier.weight" in state and "stage4.0.branches.0.0.conv1.weight" in state:
        return (
            "this looks like an ImageNet HRNet classifier, not a TransPose model; initialise a TransPose-H "
            "backbone from it with tpose.models.imagenet_init.init_backbone_from_imagenet"
        )
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    fields = _structure(state)
    if fields is not None and fields["backbone"] in ("resnet_s", "resnet_s_star", "hrnet_s_w32", "hrnet_s_w48"):
        name, over = _closest_variant(fields)
        try:
            cfg = get_config(name, **{k: v for k, v in over.items()})
            exact = not any(_diff(shapes, _expected_shapes(cfg), any_grid=True))
        except (TypeError, ValueError):
            exact = False
        if exact:
            custom = {"backbone", "d_model", "num_layers", "dim_feedforward"} & set(over)
            note = " (num_heads cannot be read from the weights: check it)" if custom else ""
            return f"this looks like a {_describe(name, over)}{note}; build it with {_call_hint(name, over)}"
    # fall back to the registered variant sharing the most entries
    k = state["final_layer.weight"].shape[0] if "final_layer.weight" in state else None
    scored = []
    for name in sorted(variant_configs()):
        want = _expected_shapes(get_config(name, **({"num_keypoints": k} if k else {})))
        missing, unexpected, mismatched = _diff(shapes, want, any_grid=True)
        wrong = len(missing) + len(unexpected) + len(mismatched)
        scored.append((wrong, name, len(want)))
    wrong, name, total = min(scored)
    if wrong < total / 2:
        return f"the closest registered variant is {name} ({wrong} entries differ)"
    return "it does not look like any registered TransPose variant"


# --------------------------------------------------------------------------------------------- loading


def _group(key: str, fine: bool) -> str:
    parts = key.split(".")
    depth = 3 if parts[0] == "global_encoder" else 2 if fine and parts[0].startswith(("stage", "layer")) else 1
    return ".".join(parts[:depth]) if len(parts) > depth else key


def _summarise(keys: list[str]) -> str:
    """A short listing: every key when few, else counts per module prefix (coarser when still many)."""
    if len(keys) <= _LIST_LIMIT:
        return ", ".join(keys)
    for fine in (True, False):
        groups: dict[str, int] = {}
        for key in keys:
            prefix = _group(key, fine)
            groups[prefix] = groups.get(prefix, 0) + 1
        if len(groups) <= _LIST_LIMIT:
            break
    items = [p if p in keys else f"{p}.* ({n})" for p, n in groups.items()]
    more = f", ... and {len(items) - _LIST_LIMIT} more groups" if len(items) > _LIST_LIMIT else ""
    return ", ".join(items[:_LIST_LIMIT]) + more


def _describe_model(config: ModelConfig) -> str:
    name = variant_name(config) or "a custom TransPose"
    return (
        f"{name} ({config.backbone}, d_model={config.d_model}, {config.num_layers} layers, {config.num_heads} "
        f"heads, ffn {config.dim_feedforward}, {config.num_keypoints} keypoints, {config.pos_embedding} positions)"
    )


def _mismatch_message(
    label: str,
    config: ModelConfig,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    guess: str | None,
) -> str:
    lines = [f"checkpoint {label} does not fit {_describe_model(config)}:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {_summarise(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {_summarise(unexpected)}")
    if mismatched:
        shown = [f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched[:_LIST_LIMIT]]
        more = f"; ... and {len(mismatched) - _LIST_LIMIT} more" if len(mismatched) > _LIST_LIMIT else ""
        lines.append(f"  shape mismatches ({len(mismatched)}): " + "; ".join(shown) + more)
    if guess:
        lines.append(f"  {guess}")
    lines.append("  (pass strict=False to load only the entries that fit)")
    return "\n".join(lines)


def _trained_grid(model: TransPose, table: torch.Tensor, metadata: Mapping[str, Any] | None) -> tuple[int, int] | None:
    h, w = model.config.image_size
    candidates = _grid_candidates(table.shape[0], model.backbone_stride, model.size_multiple, h / w)
    if not candidates:
        return None
    saved = (metadata or {}).get("model", {}).get("image_size") if isinstance(metadata, Mapping) else None
    if saved:
        grid = (int(saved[0]) // model.backbone_stride, int(saved[1]) // model.backbone_stride)
        if grid in candidates:
            return grid
    # a sine table tells its grid; a learned one gets the factorisation closest to the model's aspect
    return _sine_grid(table, candidates) or candidates[0]


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
    model.config = model.config.with_overrides(image_size=size)


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
    missing, unexpected, mismatched = _diff(shapes, want)
    if strict and (missing or unexpected or mismatched):  # raised before the model is touched
        guess = guess_variant(state, metadata)
        message = _mismatch_message(label, model.config, missing, unexpected, mismatched, guess)
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
        trained_image_size=model.config.image_size if grid is not None else None,
    )


# --------------------------------------------------------------------------------------------- saving


def _atomic(path: Path, write: Any) -> None:
    """``write(tmp)`` then rename over ``path``, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
) -> Path:
    """Write ``path`` (.safetensors) and ``<stem>.json`` with the config; :func:`load_model` reads both.

    ``storage_dtype`` (e.g. ``torch.float16``) stores floating-point tensors in that type, half the size
    for shipping; loading casts them back to the model's dtype.
    """
    from safetensors.torch import save_file

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
        "keypoint_set": _KEYPOINT_SET_BY_COUNT.get(model.config.num_keypoints),
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
    _atomic(path, lambda tmp: save_file(state, str(tmp), metadata={"tpose": json.dumps(meta)}))
    _atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(text + "\n"))
    return path


def save_released_layout(model: TransPose, path: str | Path) -> Path:
    """A plain ``.pth`` state dict with the released key layout (loads into the original code)."""
    path = Path(path)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, lambda tmp: torch.save(state, tmp))
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
        fields = _structure(state)
        if fields is None:
            raise CheckpointError(
                f"{path} has no tpose metadata (<stem>.json) and is not a TransPose state dict; "
                f"{guess_variant(state) or ''}".rstrip("; ")
            )
        name, over = _closest_variant(fields)
        custom = sorted(set(over) - {"num_keypoints", "pos_embedding"})
        if custom:
            raise CheckpointError(
                f"{path} has no tpose metadata and its architecture differs from every registered variant "
                f"(closest: {_describe(name, over, '')}); num_heads cannot be read from the weights, so build it "
                f"explicitly, e.g. {_call_hint(name, over)[:-1]}, num_heads=...)"
            )
        size = {"image_size": fields["image_size"]} if "image_size" in fields else {}
        config = get_config(name, **over, **size)
        keypoint_set = _KEYPOINT_SET_BY_COUNT.get(config.num_keypoints)
        metadata = {"model": config.to_dict(), "variant": name, "keypoint_set": keypoint_set}
    model = TransPose(config)
    _load_state(model, state, metadata, _label(path), strict)
    model.metadata = dict(metadata)
    return model
