"""Data sets from the ``data`` section of a training config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..data import AugmentConfig, CropCache, KeypointSet, TopDownDataset


def load_records(spec: dict[str, Any], keypoint_set: KeypointSet) -> list:
    """Person records for one split: ``{"type": "lspet", "root", "first", "last"}`` or
    ``{"type": "coco", "ann_file", "image_dir"}``."""
    kind = spec.get("type")
    if kind == "lspet":
        from ..data.lspet import load_lspet_records

        return load_lspet_records(spec["root"], int(spec.get("first", 1)), int(spec.get("last", 10000)))
    if kind == "coco":
        from ..data.coco import load_coco_records

        records, _stats = load_coco_records(spec["ann_file"], spec["image_dir"], keypoint_set)
        return records
    raise ValueError(f"unknown data set type {kind!r} in the config: use 'lspet' or 'coco'")


def build_datasets(
    cfg: dict[str, Any], keypoint_set: KeypointSet, image_size: tuple[int, int], is_main: bool = True
) -> tuple[Dataset, Dataset | None]:
    """The training set (augmented, crops cached) and the validation set (no augmentation)."""
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
            progress=is_main,
        )
    common = {"sigma": float(dcfg.get("sigma", 2.0)), "use_joint_weights": bool(dcfg.get("use_joint_weights"))}
    train = TopDownDataset(load_records(dcfg["train"], keypoint_set), keypoint_set, image_size, train=True,
                           augment=augment, cache=cache, **common)
    val = None
    if dcfg.get("val"):
        # validation reads the original images, exactly as `tpose eval` does, so both report the same number
        val = TopDownDataset(load_records(dcfg["val"], keypoint_set), keypoint_set, image_size, train=False,
                             **common)
    return train, val
