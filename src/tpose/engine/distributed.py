"""Process-group setup for ``torchrun`` (one process per GPU, or several CPU processes on gloo)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item() / info.world_size)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def weights_checksum(model: torch.nn.Module) -> float:
    """A float64 fingerprint of every parameter and buffer (sum of values weighted by position)."""
    total = 0.0
    for i, t in enumerate(model.state_dict().values()):
        if t.is_floating_point():
            flat = t.detach().double().flatten()
            weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
            total += float((flat * weights).sum()) * (i + 1)
    return total


def gather_floats(value: float, info: DistInfo, device: torch.device) -> list[float]:
    """Every rank's ``value``, in rank order."""
    if not info.enabled:
        return [value]
    mine = torch.tensor([value], dtype=torch.float64, device=device)
    out = [torch.zeros_like(mine) for _ in range(info.world_size)]
    dist.all_gather(out, mine)
    return [float(t.item()) for t in out]


def average_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Average BatchNorm running statistics over ranks.

    DDP keeps parameters identical, but each rank's running statistics follow its own last batches;
    averaging them at epoch end gives every replica (and the saved weights) the same, better estimate.
    """
    if not info.enabled:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(info.world_size)
