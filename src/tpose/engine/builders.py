"""Data sets from the ``data`` section of a checked training config (see ``tpose.engine.train_config``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import AugmentConfig, CropCache, KeypointSet, TopDownDataset
from ..data.mixture import DataPart, build_part


@dataclass
class TrainingData:
    """The training set (all its data sets concatenated, in ``parts`` order) and the named validation sets."""

    train: TopDownDataset
    parts: list[DataPart]
    val: list[tuple[str, TopDownDataset]]  # each in its own data set's keypoint set


def build_datasets(cfg: dict[str, Any], keypoint_set: KeypointSet, input_size: tuple[int, int],
                   is_main: bool = True, progress: bool = True) -> TrainingData:
    """Every data set read with its own keypoint set and mapped by name onto ``keypoint_set``; training
    crops augmented and cached, validation read from the original images, as ``tpose eval`` does. A
    validation set that shares images with the training sets is refused before any crop is cached."""
    dcfg = cfg["data"]
    if not dcfg.get("train"):
        raise ValueError("the config has no data.train section (e.g. {type: lspet, root: ../shared/data/lspet})")
    augment = AugmentConfig(**(cfg.get("augment") or {}))
    cache = None
    if dcfg.get("cache_dir"):
        cache = CropCache(
            cache_dir=Path(dcfg["cache_dir"]),
            max_side=dcfg.get("cache_size"),
            quality=int(dcfg.get("cache_quality", 90)),
            workers=int(dcfg.get("workers", 0)),
            progress=is_main and progress,
        )
    common = {"sigma": float(dcfg.get("sigma", 2.0)), "use_joint_weights": bool(dcfg.get("use_joint_weights"))}
    parts = [build_part(spec, keypoint_set) for spec in dcfg["train"]]
    val_parts = [build_part(spec) for spec in dcfg.get("val") or []]
    for part in val_parts:
        check_no_overlap(parts, part)
    records = [r for p in parts for r in p.records]
    train = TopDownDataset(records, keypoint_set, input_size, train=True, augment=augment, cache=cache, **common)
    val = [(part.name, TopDownDataset(part.records, part.keypoint_set, input_size, train=False, **common))
           for part in val_parts]
    return TrainingData(train=train, parts=parts, val=val)


def check_no_overlap(train_parts: list[DataPart], val: DataPart) -> None:
    """Refuse a validation set that shares images with the training set: ``best.safetensors`` would be picked
    on images the model was trained on. Images are compared by their resolved paths."""
    seen = {_image_key(r.image_path) for r in val.records}
    clashes = []
    for part in train_parts:
        shared = seen & {_image_key(r.image_path) for r in part.records}
        if shared:
            clashes.append((part.name, shared))
    if clashes:
        total = len(set().union(*(shared for _, shared in clashes)))
        which = ", ".join(f"{name!r} ({len(shared)})" for name, shared in clashes)
        example = sorted(clashes[0][1])[0]
        raise ValueError(
            f"validation set {val.name!r} shares {total} of its {len(seen)} images with training set(s) {which}, "
            f"e.g. {example}: the best checkpoint would be picked on training images. Give them disjoint images: "
            "first/last ranges (LSPET: train 1-9000, val 9001-10000), or image_ids on the validation set and the "
            "same list as exclude_image_ids on the training set")


def _image_key(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return path
