"""Small COCO-format data sets that tests write on the fly (random images, plausible skeletons)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .conftest import TINY


def write_coco_dataset(root: Path, num_images: int = 12, size: tuple[int, int] = (96, 128), seed: int = 0) -> dict:
    """Images of ``size`` = (H, W) with one drawn 'person' each, plus ``annotations.json``.

    Returns {"ann_file", "image_dir"}. Keypoints follow a jittered standing pose so that flips and
    half-body crops see realistic layouts.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    # a standing pose in a unit box (x, y), COCO-17 order
    template = np.array([
        [0.5, 0.08], [0.47, 0.06], [0.53, 0.06], [0.43, 0.08], [0.57, 0.08], [0.38, 0.22], [0.62, 0.22],
        [0.32, 0.38], [0.68, 0.38], [0.3, 0.52], [0.7, 0.52], [0.42, 0.55], [0.58, 0.55], [0.42, 0.75],
        [0.58, 0.75], [0.42, 0.95], [0.58, 0.95],
    ])
    images, annotations = [], []
    for i in range(num_images):
        img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        bw, bh = rng.uniform(0.3, 0.5) * w, rng.uniform(0.6, 0.85) * h
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        pts = template + rng.normal(0, 0.02, template.shape)
        xy = np.stack([x0 + pts[:, 0] * bw, y0 + pts[:, 1] * bh], axis=1)
        for a, b in ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (5, 6), (11, 12)):
            cv2.line(img, tuple(int(v) for v in xy[a]), tuple(int(v) for v in xy[b]), (200, 180, 160), 2)
        for k, (x, y) in enumerate(xy):
            cv2.circle(img, (int(x), int(y)), 2, (255, (k * 15) % 255, 40), -1)
        name = f"{i + 1:012d}.jpg"
        cv2.imwrite(str(image_dir / name), img)
        vis = np.full(17, 2)
        kpts = np.concatenate([xy, vis[:, None]], axis=1).reshape(-1).tolist()
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        annotations.append({
            "id": 100 + i, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
            "bbox": [float(x0), float(y0), float(bw), float(bh)], "area": float(bw * bh), "keypoints": kpts,
        })
    data: dict[str, Any] = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [], "skeleton": []}],
    }
    ann_file = root / "annotations.json"
    ann_file.write_text(json.dumps(data))
    return {"ann_file": str(ann_file), "image_dir": str(image_dir)}


def tiny_train_config(data: dict, out_dir: Path, epochs: int = 2, **train: Any) -> dict:
    """A training config for a model small enough to train in seconds on one CPU thread; validated on a data set
    of its own (written beside the training images), since training refuses a validation set that shares its
    images."""
    from tpose.engine.train_config import load_config

    cfg = load_config(None)
    cfg["model"] = "transpose_r_a3"
    cfg["model_overrides"] = {**TINY, "input_size": [64, 48]}
    cfg["keypoint_set"] = "coco17"
    val_root = Path(data["ann_file"]).parent.parent / f"{Path(data['ann_file']).parent.name}-val"
    val = write_coco_dataset(val_root, num_images=4, seed=99) if not (val_root / "annotations.json").exists() else {
        "ann_file": str(val_root / "annotations.json"), "image_dir": str(val_root / "images")}
    cfg["data"].update({"train": {"type": "coco", **data}, "val": {"type": "coco", **val}, "workers": 0,
                        "cache_dir": str(out_dir.parent / "cache")})
    cfg["train"].update({"epochs": epochs, "batch_size": 4, "lr": 1e-3, "lr_end": 1e-4, "threads": 1,
                         "amp": "off", **train})
    cfg["eval"].update({"batch_size": 8})
    cfg["output_dir"] = str(out_dir)
    return cfg
