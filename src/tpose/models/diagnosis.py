"""Why a checkpoint does not fit a model, and which model it does fit.

Loading never guesses silently: when a file does not fit, :class:`CheckpointMismatchError` lists what
differs (missing, unexpected and mis-shaped keys, summarised by module when many) and names the
registered variant the weights most likely belong to, read off their structure (backbone, width,
layers, keypoints, position table) or off the tpose metadata saved with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from .backbones import backbone_info, list_backbones
from .config import ModelConfig
from .position_encoding import grid_candidates, sine_grid
from .transpose import TransPose
from .variants import get_config, variant_configs

StateDict = dict[str, torch.Tensor]

# architecture fields compared when naming the closest registered variant
ARCH_FIELDS = ("backbone", "d_model", "num_layers", "num_heads", "dim_feedforward", "num_keypoints", "pos_embedding")
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
        holds: str | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.guess = guess
        self.holds = holds  # the registered variant the file holds (keypoints and position table aside), if known


class VariantMismatchError(CheckpointMismatchError):
    """A file holding another variant's weights than the one asked for (``found``: None when unknown)."""

    def __init__(self, message: str, asked: str, found: str | None, cause: CheckpointMismatchError | None = None
                 ) -> None:
        keys = (cause.missing, cause.unexpected, cause.mismatched, cause.guess) if cause else ([], [], [], None)
        super().__init__(message, *keys, holds=found)
        self.asked = asked
        self.found = found


# --------------------------------------------------------------------------------------------- shapes


@lru_cache(maxsize=64)
def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
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


def shape_diff(
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


def built_with(config: ModelConfig, variant: str | None) -> tuple[str | None, dict[str, Any]]:
    """The variant a config was built from and its overrides: what a weights file records to be named exactly.

    ``variant`` is the name it was built under (None: the registered variant with this architecture, if any);
    the overrides are every field that differs from that variant's config.
    """
    name = variant or variant_name(config)
    if name is None or name not in variant_configs():
        return None, {}
    base = variant_configs()[name].to_dict()
    return name, {k: v for k, v in config.to_dict().items() if base.get(k) != v}


# --------------------------------------------------------------------------------------------- guessing


def read_structure(state: StateDict) -> dict[str, Any] | None:
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
        info = backbone_info(backbone.split(" ")[0])  # "resnet_s with 6 layer2 blocks": resnet_s's contract
        stride, multiple = info.stride, info.size_multiple
        grid = sine_grid(table, grid_candidates(table.shape[0], stride, multiple))
        out["pos_embedding"] = "sine" if grid else "learnable"
        if grid:
            out["input_size"] = (grid[0] * stride, grid[1] * stride)
    return out


def closest_variant(fields: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registered variant needing the fewest overrides to match ``fields`` (num_heads kept)."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for name, cfg in sorted(variant_configs().items()):
        overrides = {k: v for k, v in fields.items() if k in ARCH_FIELDS and getattr(cfg, k) != v}
        if best is None or len(overrides) < best[0]:
            best = (len(overrides), name, overrides)
    assert best is not None
    return best[1], best[2]


def describe_variant(name: str, overrides: Mapping[str, Any], noun: str = "checkpoint") -> str:
    text = f"{name} {noun}".rstrip()
    if overrides:
        text += " with " + ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return text


def call_hint(name: str, overrides: Mapping[str, Any]) -> str:
    args = "".join(f", {k}={v!r}" for k, v in overrides.items())
    return f'tpose.create_model("{name}", weights=...{args})'


def identify(state: StateDict) -> str | None:
    """The registered variant a state dict without metadata holds (keypoints and position table aside), if any."""
    fields = read_structure(state)
    if fields is None:
        return None
    name, over = closest_variant(fields)
    return name if not set(over) - {"num_keypoints", "pos_embedding"} else None


def infer_config(state: StateDict, label: str) -> tuple[str, ModelConfig]:
    """The variant and architecture read off a state dict that came without metadata (a released ``.pth``)."""
    fields = read_structure(state)
    if fields is None:
        raise CheckpointError(f"{label} has no tpose metadata (<stem>.json) and is not a TransPose state dict; "
                              f"{guess_variant(state) or ''}".rstrip("; "))
    name, over = closest_variant(fields)
    if set(over) - {"num_keypoints", "pos_embedding"}:
        raise CheckpointError(
            f"{label} has no tpose metadata and its architecture differs from every registered variant "
            f"(closest: {describe_variant(name, over, '')}); num_heads cannot be read from the weights, so "
            f"build it explicitly, e.g. {call_hint(name, over)[:-1]}, num_heads=...)"
        )
    size = {"input_size": fields["input_size"]} if "input_size" in fields else {}
    return name, get_config(name, **over, **size)


def guess_variant(state: StateDict, metadata: Mapping[str, Any] | None = None) -> str | None:
    """One sentence saying which model the weights belong to (None when nothing fits): the variant and
    overrides the file's metadata records, else read off its tensors."""
    recorded = metadata.get("variant") if metadata else None
    if recorded in variant_configs() and isinstance(metadata.get("model"), Mapping):  # type: ignore[union-attr]
        try:  # the variant the file was built as, and its overrides of it (recomputed for files that predate them)
            _, over = built_with(ModelConfig.from_dict(dict(metadata["model"])), str(recorded))  # type: ignore[index]
        except (TypeError, ValueError):
            over = None
        if over is not None:
            return f"the file was saved from {describe_variant(str(recorded), over, '')}; build it with " \
                   f"{call_hint(str(recorded), over)}"
    if metadata and isinstance(metadata.get("model"), Mapping):
        try:
            cfg = ModelConfig.from_dict(dict(metadata["model"]))
        except (TypeError, ValueError):
            cfg = None
        if cfg is not None:
            name, over = closest_variant({k: getattr(cfg, k) for k in ARCH_FIELDS})
            return f"the file was saved from {describe_variant(name, over, '')}; build it with {call_hint(name, over)}"
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
    fields = read_structure(state)
    if fields is not None and fields["backbone"] in list_backbones():
        name, over = closest_variant(fields)
        try:
            cfg = get_config(name, **{k: v for k, v in over.items()})
            exact = not any(shape_diff(shapes, expected_shapes(cfg), any_grid=True))
        except (TypeError, ValueError):
            exact = False
        if exact:
            custom = {"backbone", "d_model", "num_layers", "dim_feedforward"} & set(over)
            note = " (num_heads cannot be read from the weights: check it)" if custom else ""
            return f"this looks like a {describe_variant(name, over)}{note}; build it with {call_hint(name, over)}"
    # fall back to the registered variant sharing the most entries
    k = state["final_layer.weight"].shape[0] if "final_layer.weight" in state else None
    scored = []
    for name in sorted(variant_configs()):
        want = expected_shapes(get_config(name, **({"num_keypoints": k} if k else {})))
        missing, unexpected, mismatched = shape_diff(shapes, want, any_grid=True)
        wrong = len(missing) + len(unexpected) + len(mismatched)
        scored.append((wrong, name, len(want)))
    wrong, name, total = min(scored)
    if wrong < total / 2:
        return f"the closest registered variant is {name} ({wrong} entries differ)"
    return "it does not look like any registered TransPose variant"


# --------------------------------------------------------------------------------------------- the one call


def diagnose(label: str, config: ModelConfig, state: StateDict, metadata: Mapping[str, Any] | None,
             want: Mapping[str, tuple[int, ...]], asked: str | None = None) -> CheckpointMismatchError:
    """Everything a loader says about a file that does not fit a model of ``config`` (whose state dict has the
    shapes ``want``): the differing keys, the variant the file holds and what would load it, as one error (a
    :class:`VariantMismatchError` when the caller ``asked`` for a variant). The loader's only call into this
    module, made once the file is known not to fit."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected, mismatched = shape_diff(shapes, want)
    guess = guess_variant(state, metadata)
    message = mismatch_message(label, config, missing, unexpected, mismatched, guess)
    error = CheckpointMismatchError(message, missing, unexpected, mismatched, guess, identify(state))
    return error if asked is None else VariantMismatchError(message, asked, error.holds, error)


# --------------------------------------------------------------------------------------------- messages


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


def mismatch_message(
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


