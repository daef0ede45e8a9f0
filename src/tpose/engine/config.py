"""Training configuration: a YAML file plus ``key=value`` overrides from the command line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "model": "transpose_r_a4",
    "model_overrides": {},
    "keypoint_set": "coco17",
    "init": {"imagenet": None, "weights": None},
    "data": {
        "train": None,  # {"type": "lspet"|"coco", ...}
        "val": None,
        "workers": 2,
        "cache_dir": "cache",
        "cache_size": 176,
        "cache_quality": 90,
        "sigma": 2.0,
        "use_joint_weights": False,
    },
    "augment": {},
    "train": {
        "epochs": 230,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 1e-4,
        "lr_end": 1e-5,
        "weight_decay": 0.0,
        "schedule": "cosine",  # cosine | step | constant
        "schedule_per": "epoch",  # epoch (released recipe) | step
        "warmup_steps": 0,
        "amp": "auto",  # auto | off | bf16 | fp16
        "channels_last": True,
        "fast_dropout": True,  # CPU dropout masks from 16 random bits per element (tpose.models.dropout)
        "compile": False,
        "grad_clip": 0.0,
        "seed": 0,
        "threads": 0,  # 0 = PyTorch default
        "max_steps_per_epoch": 0,  # 0 = the whole epoch; small values make quick smoke runs
        "time_limit_minutes": 0,  # stop cleanly (after a checkpoint) when the budget is spent; resume later
    },
    "eval": {
        "every": 1,
        "flip_test": True,
        "decode": "dark",
        "metric": "pck",  # pck | coco
        "joint_subset": None,
        "batch_size": 64,
        "max_samples": 0,
    },
    "output_dir": "runs/exp",
}


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=3e-4`` -> (["train", "lr"], 0.0003); values are read as YAML scalars/lists."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value (e.g. train.epochs=10)")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    if isinstance(value, str):
        try:  # YAML 1.1 reads 3e-4 as a string
            value = float(value)
        except ValueError:
            pass
    return key.strip().split("."), value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults <- YAML file <- overrides. Unknown top-level sections are an error (likely a typo)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config must be a mapping")
        unknown = set(data) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"{path}: unknown config sections {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        cfg = _merge(cfg, data)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = cfg
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        if keys[0] not in DEFAULTS:
            raise ValueError(f"override {text!r}: unknown section {keys[0]!r}; known: {sorted(DEFAULTS)}")
        node[keys[-1]] = value
    return cfg
