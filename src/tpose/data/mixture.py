"""Several labelled data sets as one: each read with its own keypoint set, mapped onto the model's by
joint name, and drawn with a sampling weight of its own.

A joint that a data set does not label becomes v = 0 in its records, so its target weight is 0 and the
loss never pulls that heatmap towards an empty map. ``MixtureSampler`` draws, each epoch, ``weight x size``
samples of every data set (whole repeats plus a random part), shuffled together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from .coco import coco_keypoint_set, load_coco_records
from .keypoint_sets import LSP14, KeypointSet, get_keypoint_set
from .lsp import NUM_IMAGES as LSP_IMAGES
from .lsp import load_lsp_records
from .lspet import NUM_IMAGES as LSPET_IMAGES
from .lspet import load_lspet_records
from .records import JointMap, PersonRecord, joint_sources, remap_records


@dataclass(frozen=True)
class DataPart:
    """One data set: its name, its records (in ``keypoint_set``), its sampling weight, the set it was read with."""

    name: str
    records: list[PersonRecord]
    keypoint_set: KeypointSet
    weight: float = 1.0
    source_set: str = ""
    labelled_joints: tuple[str, ...] = ()


def read_image_ids(value: str | Path | Sequence[int] | None, where: str) -> set[int] | None:
    """Image ids from a list or a text file (one id per line; ``#`` starts a comment)."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: image id file {path} not found")
        ids = set()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                ids.add(int(text))
            except ValueError:
                raise ValueError(f"{path}, line {number}: {text!r} is not an image id (one integer per line)") from None
        return ids
    return {int(v) for v in value}


def load_part_records(spec: Mapping[str, Any]) -> tuple[list[PersonRecord], KeypointSet, dict[str, int]]:
    """The records of one data set spec in its own keypoint set (see ``tpose.engine.train_config.DataSetConfig``),
    with counts of what the loader kept and skipped."""
    kind = spec["type"]
    if kind in ("lspet", "lsp"):
        load, last = (load_lspet_records, LSPET_IMAGES) if kind == "lspet" else (load_lsp_records, LSP_IMAGES)
        records = load(spec["root"], spec.get("first") or 1, spec.get("last") or last)
        return records, LSP14, {"images": len(records), "kept": len(records)}
    if kind == "coco":
        own = get_keypoint_set(spec["keypoint_set"]) if spec.get("keypoint_set") else coco_keypoint_set(
            spec["ann_file"])
        records, stats = load_coco_records(spec["ann_file"], spec["image_dir"], own)
        return records, own, stats
    raise ValueError(f"unknown data set type {kind!r}: use lspet, lsp or coco")


def build_part(spec: Mapping[str, Any], model_set: KeypointSet | str | None = None) -> DataPart:
    """One data set read and filtered by image id; mapped by name onto ``model_set`` when one is given
    (training), else kept in its own keypoint set (evaluation: PCK's normaliser is the box of all the
    person's own visible joints, and only joints the data set really has are scored)."""
    name = spec.get("name") or spec["type"]
    records, own, stats = load_part_records(spec)
    keep = read_image_ids(spec.get("image_ids"), f"data set {name!r}")
    drop = read_image_ids(spec.get("exclude_image_ids"), f"data set {name!r}") or set()
    loaded = len(records)
    if keep is not None:
        records = [r for r in records if r.image_id in keep]
    records = [r for r in records if r.image_id not in drop]
    if not records:
        where = spec.get("ann_file") or spec.get("root")
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in stats.items())
        filtered = f"; {loaded} left, none of them among the image id filters" if loaded else ""
        raise ValueError(f"data set {name!r} ({where}): no annotated person passed the filters (loader: {counts}; "
                         f"kept are non-crowd persons with a valid box and labelled keypoints{filtered})")
    weight = float(spec.get("weight", 1.0))
    if model_set is None:
        return DataPart(name=name, records=records, weight=weight, keypoint_set=own, source_set=own.name,
                        labelled_joints=own.names)
    model_set = get_keypoint_set(model_set)
    joint_map: JointMap = spec.get("joint_map") or {}
    sources = joint_sources(own, model_set, joint_map)
    labelled = tuple(n for n, idx in zip(model_set.names, sources, strict=True) if idx)
    if not labelled:
        raise ValueError(f"data set {name!r} ({own.name}: {list(own.names)}) shares no joint name with the model's "
                         f"keypoint set {model_set.name!r}; map them with joint_map")
    if own is not model_set or joint_map:
        records = remap_records(records, own, model_set, joint_map=joint_map)
    return DataPart(name=name, records=records, weight=weight, keypoint_set=model_set, source_set=own.name,
                    labelled_joints=labelled)


class MixtureSampler(Sampler[int]):
    """Indices into the concatenation of data sets of ``sizes``, each drawn ``weight x size`` times per epoch.

    Weight 1 everywhere is a plain shuffled concatenation; weight 2 draws each person of that data set
    twice per epoch on average, 0.5 half of them. Under DDP each of ``world_size`` ranks takes every
    ``world_size``-th index of the same shuffled list (cut to a multiple of ``world_size``). The order
    depends only on ``seed`` and the epoch set with ``set_epoch``, so a resumed run draws the same.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("MixtureSampler needs one weight per data set")
        if any(w <= 0 for w in weights):
            raise ValueError(f"sampling weights must be > 0, got {list(weights)}")
        self.sizes = [int(s) for s in sizes]
        self.weights = [float(w) for w in weights]
        self.offsets = np.cumsum([0, *self.sizes])
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draws(self) -> list[int]:
        """Samples drawn per data set each epoch."""
        return [int(round(w * n)) for w, n in zip(self.weights, self.sizes, strict=True)]

    def _indices(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        parts = []
        for size, offset, count in zip(self.sizes, self.offsets, self.draws(), strict=False):
            whole, rest = divmod(count, size)
            picks = [np.arange(size)] * whole + [rng.permutation(size)[:rest]]
            parts.append(offset + np.concatenate(picks))
        order = np.concatenate(parts)
        rng.shuffle(order)
        usable = len(order) - len(order) % self.world_size
        return order[:usable][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return sum(self.draws()) // self.world_size


def describe_parts(parts: Sequence[DataPart]) -> str:
    """One line per data set: persons, weight, share of an epoch and the joints it labels."""
    total = sum(p.weight * len(p.records) for p in parts)
    lines = []
    for p in parts:
        share = p.weight * len(p.records) / total if total else 0.0
        lines.append(f"  {p.name}: {len(p.records)} persons ({p.source_set}), weight {p.weight:g}, "
                     f"{share:.0%} of an epoch, labels {len(p.labelled_joints)} joints")
    return "\n".join(lines)

