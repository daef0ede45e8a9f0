"""``tpose train``: the top-down training loop (single process, or DDP under ``torchrun``).

Determinism is by epoch: every epoch reseeds all RNGs from (seed, epoch, rank), so a run resumed from
its last checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from ..data.keypoint_sets import get_keypoint_set
from ..data.mixture import MixtureSampler, describe_parts
from ..factory import resolve_device
from ..models.checkpoint import CheckpointMismatchError, load_weights, save_weights
from ..models.dropout import set_fast_dropout
from ..models.imagenet_init import init_backbone_from_imagenet
from ..models.registry import build_model
from ..utils.cores import native_bf16
from .builders import build_datasets
from .config import load_config, validate_config
from .distributed import (
    DistInfo,
    all_reduce_mean,
    average_buffers,
    barrier,
    cleanup,
    gather_floats,
    init_distributed,
    weights_checksum,
)
from .evaluate import evaluate
from .losses import masked_mse
from .options import EvalSettings
from .run_log import RunLog
from .schedule import learning_rate
from .state import load_training_state, save_training_state


@dataclass
class TrainResult:
    output_dir: Path
    epochs_done: int
    best_metric: float | None
    best_epoch: int | None
    status: str  # "finished" | "paused" (time limit) | "resumed-finished" (nothing left)
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 (or fp16 on older GPUs) on CUDA; on a CPU only where it has native bf16 kernels.

    On CPUs without them (AVX2-only) bf16 autocast is many times slower than fp32, so auto keeps fp32.
    """
    if mode in ("off", "none", "fp32", None, False):
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if mode != "auto":
        raise ValueError(f"train.amp must be auto, off, bf16 or fp16, got {mode!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if native_bf16(device) else None


def input_size_at(schedule: list, epoch: int, default: tuple[int, int]) -> tuple[int, int]:
    """The (H, W) of 0-based ``epoch`` under ``train.input_sizes`` ([[first epoch, [H, W]], ...], 1-based)."""
    size = tuple(default)
    for first, hw in schedule:
        if epoch + 1 >= int(first):
            size = (int(hw[0]), int(hw[1]))
    return size


def _resume_mismatch(path: Path, saved: Any, cfg: dict[str, Any], err: CheckpointMismatchError) -> str:
    """Why the run folder's checkpoint cannot continue this config: which setting differs, how to start fresh."""
    diffs = []
    if isinstance(saved, dict):
        for key in ("model", "keypoint_set"):
            if saved.get(key) != cfg.get(key):
                diffs.append(f"{key}: {saved.get(key)!r} in the checkpoint, {cfg.get(key)!r} now")
        old, new = saved.get("model_overrides") or {}, cfg.get("model_overrides") or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key) and key not in ("dropout", "input_size", "image_size"):
                diffs.append(f"model_overrides.{key}: {old.get(key)!r} in the checkpoint, {new.get(key)!r} now")
    what = "; ".join(diffs) or str(err).splitlines()[0]
    return (f"{path} was written by a run of another architecture ({what}): give a new output_dir "
            f"(output_dir=runs/new), or start over in this one with --no-resume (it overwrites last.ckpt)")


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    s = (seed * 1_000_003 + epoch * 7919 + rank) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _worker_init(worker_id: int) -> None:
    s = torch.initial_seed() % (2**32)
    random.seed(s)
    np.random.seed(s)


def _bare(model: torch.nn.Module) -> torch.nn.Module:
    model = model.module if isinstance(model, DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def train(config: dict[str, Any] | str | Path, overrides: list[str] | None = None, device: str = "auto",
          resume: bool = True, progress: bool = True) -> TrainResult:
    """Train as ``config`` says; resumes from ``<output_dir>/last.ckpt`` when it exists and ``resume``.

    ``config`` is a YAML path (with ``overrides``) or a dict, checked either way (``validate_config``).
    """
    cfg = validate_config(config) if isinstance(config, dict) else load_config(config, overrides)
    tcfg, dcfg, ecfg = cfg["train"], cfg["data"], cfg["eval"]
    dev = resolve_device(device)
    info = init_distributed(str(dev))
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    out_dir = Path(cfg["output_dir"])
    log = RunLog(out_dir, enabled=info.is_main)
    try:
        return _train(cfg, tcfg, dcfg, ecfg, dev, info, out_dir, log, resume, progress)
    finally:
        log.close()
        cleanup(info)


def _train(cfg, tcfg, dcfg, ecfg, dev, info: DistInfo, out_dir: Path, log: RunLog, resume: bool,
           progress: bool) -> TrainResult:
    seed = int(tcfg["seed"])
    _seed_epoch(seed, -1, 0)  # identical initial weights on every rank
    kpset = get_keypoint_set(cfg["keypoint_set"])
    overrides = dict(cfg.get("model_overrides") or {})
    overrides.setdefault("num_keypoints", kpset.num_keypoints)
    model = build_model(cfg["model"], **overrides)
    init = cfg.get("init") or {}
    if init.get("imagenet"):
        report = init_backbone_from_imagenet(model, init["imagenet"])
        if info.is_main:
            print(report)
    if init.get("weights"):
        load_weights(model, init["weights"])
    input_size = model.config.input_size
    if not info.is_main:
        barrier(info)  # let rank 0 build the crop cache first, then load it
    data = build_datasets(cfg, kpset, input_size, is_main=info.is_main)
    train_ds = data.train
    if info.is_main:
        barrier(info)
        print(f"training on {len(train_ds)} persons from {len(data.parts)} data set(s):\n{describe_parts(data.parts)}")

    model.to(dev)
    set_fast_dropout(model, bool(tcfg.get("fast_dropout", True)))
    channels_last = bool(tcfg.get("channels_last", True))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_name = str(tcfg["optimizer"]).lower()
    if opt_name == "adam":
        optimizer = torch.optim.Adam(params, lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    elif opt_name == "adamw":
        optimizer = torch.optim.AdamW(params, lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    else:
        raise ValueError(f"train.optimizer must be adam or adamw, got {opt_name!r}")
    amp_dtype = resolve_amp(tcfg["amp"], dev)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 and dev.type == "cuda" else None

    start_epoch, best, best_epoch = 0, None, None
    ckpt_path = out_dir / "last.ckpt"
    if resume and ckpt_path.exists():
        state = load_training_state(ckpt_path, map_location=dev)
        try:
            load_weights(model, state["model"])
        except CheckpointMismatchError as err:
            raise ValueError(_resume_mismatch(ckpt_path, state.get("config"), cfg, err)) from None
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best, best_epoch = state["epoch"], state.get("best"), state.get("best_epoch")
        if info.is_main:
            print(f"resuming from {ckpt_path} after epoch {start_epoch}")
    # records of epochs after the checkpoint (or of a run killed before its first one) are redone: drop them
    log.truncate_after(start_epoch)

    net: torch.nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if tcfg.get("compile"):
        net = torch.compile(net)

    batch_size = int(tcfg["batch_size"])
    sampler = MixtureSampler([len(p.records) for p in data.parts], [p.weight for p in data.parts], seed=seed,
                             rank=info.rank, world_size=info.world_size)
    workers = int(dcfg["workers"])
    loader = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                        pin_memory=dev.type == "cuda", worker_init_fn=_worker_init if workers else None,
                        persistent_workers=False,
                        # fork after threads (TensorBoard writer, OpenMP, OpenCV pools) can deadlock a worker
                        multiprocessing_context="spawn" if workers else None)
    steps_per_epoch = len(loader)
    max_steps = int(tcfg.get("max_steps_per_epoch") or 0)
    if max_steps:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    epochs = int(tcfg["epochs"])
    limit_s = float(tcfg.get("time_limit_minutes") or 0) * 60
    t_start = time.time()
    status = "finished" if start_epoch < epochs else "resumed-finished"
    epochs_done = start_epoch

    for epoch in range(start_epoch, epochs):
        _seed_epoch(seed, epoch, info.rank)
        sampler.set_epoch(epoch)
        train_ds.set_input_size(input_size_at(tcfg.get("input_sizes") or [], epoch, input_size))
        if not workers and hasattr(train_ds, "_rng"):
            train_ds._rng = None  # in-process augmentation: reseed from this epoch's torch seed
        net.train()
        loss_sum, n_seen, t0 = 0.0, 0, time.time()
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress and info.is_main)
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            lr = learning_rate(tcfg["schedule"], tcfg["lr"], tcfg["lr_end"], epoch, step, steps_per_epoch, epochs,
                               tcfg.get("schedule_per", "epoch"), int(tcfg.get("warmup_steps") or 0))
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = batch["image"].to(dev, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            target = batch["target"].to(dev, non_blocking=True)
            weight = batch["target_weight"].to(dev, non_blocking=True)
            ctx = torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
            with ctx:
                heatmaps = net(images)
            loss = masked_mse(heatmaps, target, weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step}; "
                                         "lower train.lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if tcfg.get("grad_clip"):
                torch.nn.utils.clip_grad_norm_(params, float(tcfg["grad_clip"]))
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            loss_sum += loss.item() * images.shape[0]
            n_seen += images.shape[0]
            if bar is not None:
                rate = n_seen * info.world_size / max(1e-9, time.time() - t0)
                bar.set_postfix(loss=f"{loss_sum / n_seen:.6f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        elapsed = time.time() - t0
        average_buffers(_bare(net), info)
        train_loss = all_reduce_mean(loss_sum / max(1, n_seen), info, dev)
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr,
                                  "images_per_s": n_seen * info.world_size / max(1e-9, elapsed),
                                  "epoch_minutes": elapsed / 60}
        is_last = epoch + 1 == epochs
        out_of_time = bool(limit_s) and time.time() - t_start > limit_s
        if train_ds.input_size != tuple(input_size):
            record["input_size"] = "x".join(str(v) for v in train_ds.input_size)
        metric = None
        if data.val and ecfg.get("every") and ((epoch + 1) % int(ecfg["every"]) == 0 or is_last or out_of_time):
            if info.is_main:
                for i, (name, val_ds) in enumerate(data.val):
                    value, extra = _validate(_bare(net), val_ds, kpset, ecfg, dev, progress)
                    # the first validation set keeps the plain val_ keys and decides the best checkpoint
                    record.update(extra if i == 0 else {f"val_{name}_{k[4:]}": v for k, v in extra.items()})
                    metric = value if i == 0 else metric
            barrier(info)
        if info.is_main:
            improved = metric is not None and (best is None or metric > best)
            if improved:
                best, best_epoch = metric, epoch + 1
                save_weights(_bare(net), out_dir / "best.safetensors",
                             extra_metadata=_weights_metadata(cfg, kpset, epoch + 1, record))
            save_weights(_bare(net), out_dir / "last.safetensors",
                         extra_metadata=_weights_metadata(cfg, kpset, epoch + 1, record))
            record["best"] = best
            log.epoch(record)
            save_training_state(ckpt_path, model=_bare(net).state_dict(), optimizer=optimizer.state_dict(),
                                scaler=scaler.state_dict() if scaler is not None else None, epoch=epoch + 1,
                                best=best, best_epoch=best_epoch, config=cfg)
            print(_epoch_line(record))
        barrier(info)
        epochs_done = epoch + 1
        if out_of_time and not is_last:
            status = "paused"
            break
    if info.enabled:
        # DDP keeps replicas identical by construction; check it, since a silent divergence would waste a run
        sums = gather_floats(weights_checksum(_bare(net)), info, dev)
        if info.is_main:
            (out_dir / "rank_checksums.json").write_text(json.dumps(sums))
        if any(abs(v - sums[0]) > 1e-6 * max(1.0, abs(sums[0])) for v in sums):
            raise RuntimeError(f"ranks ended with different weights (checksums {sums})")
    return TrainResult(out_dir, epochs_done, best, best_epoch, status, log.history())


def _validate(model, val_ds, kpset, ecfg, dev, progress) -> tuple[float, dict[str, Any]]:
    ds = val_ds
    if ecfg.get("max_samples"):
        ds = Subset(val_ds, range(min(len(val_ds), int(ecfg["max_samples"]))))
    loader = DataLoader(ds, batch_size=int(ecfg["batch_size"]), shuffle=False, num_workers=0)
    metric_name = ecfg.get("metric", "pck")
    # float32, as `tpose eval`, so both report the same number
    settings = EvalSettings(flip_test=bool(ecfg["flip_test"]), decode=ecfg["decode"],
                            joint_subset=ecfg.get("joint_subset"))
    report = evaluate(model, loader, kpset, settings, data_keypoint_set=val_ds.keypoint_set, device=dev,
                      metrics=(metric_name,), progress=False)
    extra = {f"val_{k}": v for k, v in report.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    prefix = {"pck": "PCK@", "coco": "AP", "pckh": "PCKh@"}.get(metric_name, metric_name)
    key = next((k for k in report.metrics if k.startswith(prefix)), prefix)
    value = report.metrics.get(key)
    if value is None:
        raise KeyError(f"evaluation gave no {key!r}; it reported {sorted(report.metrics)}")
    return float(value), extra


def _weights_metadata(cfg, kpset, epoch, record) -> dict[str, Any]:
    return {"variant": cfg["model"], "keypoint_set": kpset.to_dict(), "epoch": epoch,
            "metrics": {k: v for k, v in record.items() if k.startswith("val_")}}


def _epoch_line(record: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()]
    return " ".join(parts)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)
