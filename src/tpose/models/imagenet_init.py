"""Start training from ImageNet backbones, as the released models did.

Each backbone's registration says how ImageNet weights map onto its keys (``imagenet_init``). The built-in
ones keep the key names of their classification parents, so a torchvision ResNet-50 state dict maps onto
TransPose-R's ``conv1``/``bn1``/``layer1``/``layer2`` and an official HRNet-W32/W48 ImageNet checkpoint onto
TransPose-H's stem, ``layer1``, ``transition1``, ``stage2``, ``transition2`` and ``stage3`` unchanged.
The report spells out what was used, what the source had beyond the backbone, and which backbone entries
kept their random initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .backbones import backbone_spec
from .checkpoint import CheckpointError, read_state_dict
from .transpose import TransPose

_COUNTER = "num_batches_tracked"


@dataclass
class InitReport:
    """Keys copied, source keys with no place in the backbone, and backbone keys left as initialised."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_initialised: list[str] = field(default_factory=list)
    source_kind: str = "unknown"

    def summary(self) -> str:
        def groups(keys: list[str]) -> str:
            seen: dict[str, int] = {}
            for k in keys:
                parts = k.split(".")
                prefix = ".".join(parts[:2]) if parts[0].startswith(("layer", "stage")) and len(parts) > 2 else parts[0]
                seen[prefix] = seen.get(prefix, 0) + 1
            return ", ".join(f"{p} ({n})" for p, n in seen.items()) or "none"

        return (
            f"ImageNet init from {self.source_kind}: {len(self.loaded)} backbone entries loaded\n"
            f"  skipped source entries ({len(self.skipped)}): {groups(self.skipped)}\n"
            f"  backbone entries not initialised from ImageNet ({len(self.not_initialised)}): "
            f"{groups(self.not_initialised)}"
        )


def _source_kind(state: dict[str, torch.Tensor]) -> str:
    if "transition1.0.0.weight" in state:
        return f"HRNet-W{state['transition1.0.0.weight'].shape[0]}"
    if "layer1.0.conv1.weight" in state and "conv1.weight" in state:
        blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("layer3.")})
        return f"ResNet (layer3: {len(blocks)} blocks)" if blocks else "ResNet"
    return "unknown"


def init_backbone_from_imagenet(model: TransPose, source: str | Path | dict[str, Any]) -> InitReport:
    """Copy ImageNet weights into ``model``'s backbone entries of the same name.

    ``source``: a torchvision ResNet-50 state dict (for TransPose-R) or an official HRNet-W32/W48
    ImageNet checkpoint (for TransPose-H), as a file or dict, mapped by the backbone's registered
    ``imagenet_init``. Shape mismatches raise ``ValueError``; so do a source that shares no entry with the
    backbone and a backbone registered without ``imagenet_init``. BN ``num_batches_tracked`` counters
    are copied when present and otherwise not reported (they hold no learned values).
    """
    mapping = backbone_spec(model.config.backbone).imagenet_init
    if mapping is None:
        raise ValueError(f"the {model.config.backbone} backbone was registered without imagenet_init: "
                         "it has no ImageNet start")
    state = read_state_dict(source)
    kind = _source_kind(state)
    state = mapping(state)
    prefixes = tuple(f"{name}." for name in model._backbone_names)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    mismatched = [
        f"{k}: ImageNet {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if mismatched:
        more = f"; ... and {len(mismatched) - 6} more" if len(mismatched) > 6 else ""
        raise ValueError(
            f"ImageNet weights ({kind}) do not fit the {model.config.backbone} backbone, "
            f"{len(mismatched)} shape mismatches: " + "; ".join(mismatched[:6]) + more
        )
    loaded = [k for k in own if k in state]
    if not any(not k.endswith(_COUNTER) for k in loaded):
        raise CheckpointError(
            f"ImageNet weights ({kind}) share no entry with the {model.config.backbone} backbone "
            f"(expected keys like {next(iter(own))}); source keys start {list(state)[:4]}"
        )
    with torch.no_grad():
        for k in loaded:
            own[k].copy_(state[k])
    return InitReport(
        loaded=loaded,
        skipped=[k for k in state if k not in own],
        not_initialised=[k for k in own if k not in state and not k.endswith(_COUNTER)],
        source_kind=kind,
    )
