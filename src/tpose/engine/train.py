"""``tpose train``: the top-down training loop (single process, or DDP under ``torchrun``).

Determinism is by epoch: every epoch reseeds all RNGs from (seed, epoch, rank), so a run resumed from
its last checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from ..data.keypoint_sets import KeypointSet, get_keypoint_set
from ..data.mixture import MixtureSampler, describe_parts
from ..factory import resolve_device
from ..models.checkpoint import CheckpointMismatchError, load_weights, save_weights
from ..models.dropout import set_fast_dropout
from ..models.imagenet_init import init_backbone_from_imagenet
from ..models.variants import build_model
from ..utils.cores import native_bf16
from ..weights import resolve_weights
from .builders import build_datasets
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
from .options import EvalSettings
from .run_log import RunLock, RunLog
from .schedule import learning_rate
from .state import load_training_state, save_training_state
from .step import TrainStep
from .train_config import EvalSection, TrainingConfig, TrainSection, load_config, validate_config


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
    checked = TrainingConfig.model_validate(cfg)  # the loop reads the typed config; checkpoints store ``cfg``
    dev = resolve_device(device)
    info = init_distributed(str(dev))
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)
    if checked.train.threads:
        torch.set_num_threads(checked.train.threads)
    out_dir = Path(checked.output_dir)
    # one writer per run folder: a second run refuses before it opens a log (rank 0 holds it for all ranks)
    try:
        lock = RunLock(out_dir).acquire() if info.is_main else None
    except OSError:
        cleanup(info)
        raise
    try:
        log = RunLog(out_dir, enabled=info.is_main)
        try:
            run = _Run(checked, cfg, dev, info, out_dir, log, progress)
            return run.fit(resume)
        finally:
            log.close()
    finally:
        if lock is not None:
            lock.release()
        cleanup(info)


def _build_model(config: TrainingConfig, kpset: KeypointSet, info: DistInfo) -> tuple[torch.nn.Module, set[str]]:
    """The model of the config, initialised from ImageNet or given weights as ``init`` says, and the names of
    the tensors that init loaded (the pretrained part, which ``train.pretrained_lr_scale`` slows)."""
    overrides = dict(config.model_overrides)
    overrides.setdefault("num_keypoints", kpset.num_keypoints)
    model = build_model(config.model, **overrides)
    pretrained: set[str] = set()
    if config.init.imagenet:
        report = init_backbone_from_imagenet(model, config.init.imagenet)
        pretrained.update(report.loaded)
        if info.is_main:
            print(report)
    if config.init.weights:
        report = load_weights(model, _init_weights_file(config), keypoint_set=kpset, joint_map=config.init.joint_map)
        # the final layer is never counted: its channels are per joint and some may start fresh
        pretrained.update(report.loaded)
        if info.is_main:
            print(report.summary())
    return model, pretrained


def _init_weights_file(config: TrainingConfig) -> Path:
    """``init.weights``: a file, else a registry tag of the config's model (``tpose weights`` lists them)."""
    given = str(config.init.weights)
    if Path(given).is_file() or Path(given).suffix in (".safetensors", ".pth", ".pt"):
        return Path(given)  # a missing file is reported by the load, by its name
    return resolve_weights(config.model, given)


def param_groups(model: torch.nn.Module, pretrained: set[str], scale: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the pretrained tensors at ``scale`` times the learning rate, the rest
    (the final layer, and anything init did not load) at the full rate; each group carries its ``lr_scale``."""
    slow = [p for n, p in model.named_parameters() if p.requires_grad and n in pretrained]
    full = [p for n, p in model.named_parameters() if p.requires_grad and n not in pretrained]
    groups = [{"params": full, "lr_scale": 1.0, "name": "fresh"}]
    if slow:
        groups.insert(0, {"params": slow, "lr_scale": float(scale), "name": "pretrained"})
    return groups


def frozen_part(model: torch.nn.Module, part: str) -> list[tuple[str, torch.nn.Module]]:
    """The submodules ``train.freeze.part`` names: the backbone, or everything but the final layer."""
    bare = _bare(model)
    if part == "backbone":
        names = list(getattr(bare, "_backbone_names", ()))
        if not names:
            raise ValueError(f"{type(bare).__name__} names no backbone: use train.freeze.part=all_but_head")
    else:
        names = [n for n, _ in bare.named_children() if n != "final_layer"]
    return [(n, getattr(bare, n)) for n in names]


def set_frozen(model: torch.nn.Module, part: str, frozen: bool) -> None:
    """Freeze (or release) ``part``: no gradient, so no update and no weight decay; its BatchNorm layers also keep
    their running statistics (eval mode), since a few small batches would only blur the pretrained ones."""
    for _, module in frozen_part(model, part):
        for p in module.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            for m in module.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()


def _optimizer(tcfg: TrainSection, params: list[torch.nn.Parameter] | list[dict[str, Any]]) -> torch.optim.Optimizer:
    name = str(tcfg.optimizer).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    raise ValueError(f"train.optimizer must be adam or adamw, got {name!r}")


class _Run:
    """One training run: the model, its optimizer and data, and the loop over epochs that checkpoints each."""

    def __init__(self, config: TrainingConfig, cfg: dict[str, Any], dev: torch.device, info: DistInfo,
                 out_dir: Path, log: RunLog, progress: bool) -> None:
        self.config, self.cfg, self.dev, self.info = config, cfg, dev, info
        self.out_dir, self.log, self.progress = out_dir, log, progress
        tcfg = config.train
        _seed_epoch(tcfg.seed, -1, 0)  # identical initial weights on every rank
        self.kpset = get_keypoint_set(config.keypoint_set)
        self.model, pretrained = _build_model(config, self.kpset, info)
        self.input_size = self.model.config.input_size
        if not info.is_main:
            barrier(info)  # let rank 0 build the crop cache first, then load it
        self.data = build_datasets(cfg, self.kpset, self.input_size, is_main=info.is_main, progress=progress)
        if info.is_main:
            barrier(info)
            print(f"training on {len(self.data.train)} persons from {len(self.data.parts)} data set(s):\n"
                  f"{describe_parts(self.data.parts)}")
        self.model.to(dev)
        set_fast_dropout(self.model, tcfg.fast_dropout)
        if tcfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _optimizer(tcfg, param_groups(self.model, pretrained, tcfg.pretrained_lr_scale))
        if info.is_main and (tcfg.pretrained_lr_scale != 1.0 or tcfg.freeze.epochs):
            print(_tuning_line(self.optimizer, tcfg))
        self.amp_dtype = resolve_amp(tcfg.amp, dev)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 and dev.type == "cuda" else None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.ckpt_path = out_dir / "last.ckpt"
        self._train_step: TrainStep | None = None
        self._frozen = False  # train.freeze.part frozen now (set per epoch by _wrap)

    def resume(self) -> int:
        """The epochs already done by the checkpoint in the run folder (its weights and optimizer loaded)."""
        state = load_training_state(self.ckpt_path, map_location=self.dev)
        try:
            load_weights(self.model, state["model"])
        except CheckpointMismatchError as err:
            raise ValueError(_resume_mismatch(self.ckpt_path, state.get("config"), self.cfg, err)) from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        if self.info.is_main:
            print(f"resuming from {self.ckpt_path} after epoch {state['epoch']}")
        return int(state["epoch"])

    def _loader(self, sampler: MixtureSampler) -> DataLoader:
        workers = self.config.data.workers
        return DataLoader(self.data.train, batch_size=self.config.train.batch_size, sampler=sampler,
                          num_workers=workers, drop_last=True, pin_memory=self.dev.type == "cuda",
                          worker_init_fn=_worker_init if workers else None, persistent_workers=False,
                          # fork after threads (TensorBoard writer, OpenMP, OpenCV pools) can deadlock a worker
                          multiprocessing_context="spawn" if workers else None)

    def fit(self, resume: bool) -> TrainResult:
        """Every epoch left (or until ``train.time_limit_minutes`` is spent), then the DDP replica check."""
        tcfg, info = self.config.train, self.info
        start_epoch = self.resume() if resume and self.ckpt_path.exists() else 0
        # records of epochs after the checkpoint (or of a run killed before its first one) are redone: drop them
        self.log.truncate_after(start_epoch)
        net = self._wrap(frozen=start_epoch < tcfg.freeze.epochs)
        sampler = MixtureSampler([len(p.records) for p in self.data.parts], [p.weight for p in self.data.parts],
                                 seed=tcfg.seed, rank=info.rank, world_size=info.world_size)
        loader = self._loader(sampler)
        steps = min(len(loader), tcfg.max_steps_per_epoch) if tcfg.max_steps_per_epoch else len(loader)
        limit_s = tcfg.time_limit_minutes * 60
        t_start = time.time()
        status = "finished" if start_epoch < tcfg.epochs else "resumed-finished"
        epochs_done = start_epoch
        for epoch in range(start_epoch, tcfg.epochs):
            if tcfg.freeze.epochs and epoch == tcfg.freeze.epochs:
                net = self._wrap(frozen=False)  # DDP and compile see the released part's gradients
                if info.is_main:
                    print(f"train.freeze: {_PART_WORDS[tcfg.freeze.part]} trains from epoch {epoch + 1} on")
            _seed_epoch(tcfg.seed, epoch, info.rank)
            sampler.set_epoch(epoch)
            record = self.train_epoch(net, loader, epoch, steps)
            is_last = epoch + 1 == tcfg.epochs
            out_of_time = bool(limit_s) and time.time() - t_start > limit_s
            self.end_epoch(net, epoch, record, validate=is_last or out_of_time)
            epochs_done = epoch + 1
            if out_of_time and not is_last:
                status = "paused"
                break
        if info.enabled:
            self.check_replicas(net)
        return TrainResult(self.out_dir, epochs_done, self.best, self.best_epoch, status, self.log.history())

    def _wrap(self, frozen: bool) -> torch.nn.Module:
        """The network the steps run: the model with ``train.freeze.part`` frozen or not, under DDP/compile as
        configured; built again when the freeze ends (DDP fixes the parameters it reduces when it is built)."""
        tcfg = self.config.train
        if tcfg.freeze.epochs:
            set_frozen(self.model, tcfg.freeze.part, frozen)
        self._frozen = frozen and bool(tcfg.freeze.epochs)
        net: torch.nn.Module = self.model
        if self.info.enabled:
            net = DistributedDataParallel(self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        if tcfg.compile:
            net = torch.compile(net)
        return net

    def train_epoch(self, net: torch.nn.Module, loader: DataLoader, epoch: int, steps: int) -> dict[str, Any]:
        """One epoch of optimisation steps; returns its log record (loss, learning rate, speed)."""
        tcfg, info, dev, train_ds = self.config.train, self.info, self.dev, self.data.train
        train_ds.set_input_size(input_size_at(tcfg.input_sizes, epoch, self.input_size))
        if not self.config.data.workers and hasattr(train_ds, "_rng"):
            train_ds._rng = None  # in-process augmentation: reseed from this epoch's torch seed
        net.train()
        if self._frozen:
            set_frozen(self.model, tcfg.freeze.part, True)  # net.train() put its BatchNorm layers back in training
        loss_sum, n_seen, t0, lr = 0.0, 0, time.time(), tcfg.lr
        bar = _progress(steps, f"epoch {epoch + 1}/{tcfg.epochs}", self.progress and info.is_main)
        for step, batch in enumerate(loader):
            if step >= steps:
                break
            lr = learning_rate(tcfg.schedule, tcfg.lr, tcfg.lr_end, epoch, step, steps, tcfg.epochs,
                               tcfg.schedule_per, tcfg.warmup_steps)
            loss = self.step(net, batch, lr, f"epoch {epoch + 1}, step {step}")
            loss_sum += loss * batch["image"].shape[0]
            n_seen += batch["image"].shape[0]
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
        if train_ds.input_size != tuple(self.input_size):
            record["input_size"] = "x".join(str(v) for v in train_ds.input_size)
        return record

    def step(self, net: torch.nn.Module, batch: dict[str, Any], lr: float, where: str) -> float:
        """One optimisation step at learning rate ``lr`` (the engine's :class:`TrainStep`); the batch's loss."""
        if self._train_step is None or self._train_step.net is not net:
            tcfg = self.config.train
            self._train_step = TrainStep(net, self.optimizer, self.dev, tcfg.channels_last, self.amp_dtype,
                                         self.scaler, float(tcfg.grad_clip or 0))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        try:
            loss = self._train_step(batch["image"], batch["target"], batch["target_weight"])
        except FloatingPointError as err:
            raise FloatingPointError(f"{err} at {where}; lower train.lr or check the data") from None
        return loss.item()

    def end_epoch(self, net: torch.nn.Module, epoch: int, record: dict[str, Any], validate: bool) -> None:
        """Validate when due (every ``eval.every`` epochs, and when ``validate``), save the weights and the
        training state, log the epoch."""
        info, ecfg = self.info, self.config.eval
        metric = None
        if self.data.val and ecfg.every and ((epoch + 1) % ecfg.every == 0 or validate):
            if info.is_main:
                for i, (name, val_ds) in enumerate(self.data.val):
                    value, extra = _validate(_bare(net), val_ds, self.kpset, ecfg, self.dev, self.progress)
                    # the first validation set keeps the plain val_ keys and decides the best checkpoint
                    record.update(extra if i == 0 else {f"val_{name}_{k[4:]}": v for k, v in extra.items()})
                    metric = value if i == 0 else metric
            barrier(info)
        if info.is_main:
            if metric is not None and (self.best is None or metric > self.best):
                self.best, self.best_epoch = metric, epoch + 1
                save_weights(_bare(net), self.out_dir / "best.safetensors",
                             extra_metadata=_weights_metadata(self.config, self.kpset, epoch + 1, record))
            save_weights(_bare(net), self.out_dir / "last.safetensors",
                         extra_metadata=_weights_metadata(self.config, self.kpset, epoch + 1, record))
            record["best"] = self.best
            self.log.epoch(record)
            save_training_state(self.ckpt_path, model=_bare(net).state_dict(), optimizer=self.optimizer.state_dict(),
                                scaler=self.scaler.state_dict() if self.scaler is not None else None,
                                epoch=epoch + 1, best=self.best, best_epoch=self.best_epoch, config=self.cfg)
            print(_epoch_line(record))
        barrier(info)

    def check_replicas(self, net: torch.nn.Module) -> None:
        """DDP keeps replicas identical by construction; check it, since a silent divergence would waste a run."""
        sums = gather_floats(weights_checksum(_bare(net)), self.info, self.dev)
        if self.info.is_main:
            (self.out_dir / "rank_checksums.json").write_text(json.dumps(sums))
        if any(abs(v - sums[0]) > 1e-6 * max(1.0, abs(sums[0])) for v in sums):
            raise RuntimeError(f"ranks ended with different weights (checksums {sums})")


def _validate(model: torch.nn.Module, val_ds: Any, kpset: KeypointSet, ecfg: EvalSection, dev: torch.device,
              progress: bool) -> tuple[float, dict[str, Any]]:
    ds = val_ds
    if ecfg.max_samples:
        ds = Subset(val_ds, range(min(len(val_ds), ecfg.max_samples)))
    loader = DataLoader(ds, batch_size=ecfg.batch_size, shuffle=False, num_workers=0)
    metric_name = ecfg.metric
    # float32, as `tpose eval`, so both report the same number
    settings = EvalSettings(flip_test=ecfg.flip_test, decode=ecfg.decode, joint_subset=ecfg.joint_subset)
    report = evaluate(model, loader, kpset, settings, data_keypoint_set=val_ds.keypoint_set, device=dev,
                      metrics=(metric_name,), progress=False)
    extra = {f"val_{k}": v for k, v in report.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    prefix = {"pck": "PCK@", "coco": "AP", "pckh": "PCKh@"}.get(metric_name, metric_name)
    key = next((k for k in report.metrics if k.startswith(prefix)), prefix)
    value = report.metrics.get(key)
    if value is None:
        raise KeyError(f"evaluation gave no {key!r}; it reported {sorted(report.metrics)}")
    return float(value), extra


def _weights_metadata(config: TrainingConfig, kpset: KeypointSet, epoch: int, record: dict[str, Any]
                      ) -> dict[str, Any]:
    return {"variant": config.model, "keypoint_set": kpset.to_dict(), "epoch": epoch,
            "metrics": {k: v for k, v in record.items() if k.startswith("val_")}}


_PART_WORDS = {"backbone": "the backbone", "all_but_head": "everything but the final layer"}


def _tuning_line(optimizer: torch.optim.Optimizer, tcfg: TrainSection) -> str:
    """The run's first lines say which tensors learn at which rate, and what is frozen for how long."""
    groups = ", ".join(f"{g.get('name', 'group')}: {sum(p.numel() for p in g['params']):,} weights at "
                       f"{g.get('lr_scale', 1.0):g} x lr" for g in optimizer.param_groups)
    line = f"learning rates: {groups}"
    if tcfg.freeze.epochs:
        line += f"; {_PART_WORDS[tcfg.freeze.part]} is frozen (BatchNorm statistics too) for the first " \
                f"{tcfg.freeze.epochs} epoch(s)"
    return line


def _epoch_line(record: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()]
    return " ".join(parts)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)
