"""Timing the training data pipeline alone: images per second a DataLoader delivers on real LSPET images.

``TopDownDataset`` with the crop cache and the released augmentation, in a ``DataLoader`` with spawned
workers: what a real training run reads, without the step (in a run the workers share the cores with it).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from tpose.data import LSP14, CropCache, TopDownDataset, load_lspet_records
from tpose.utils.sizes import format_size


@dataclass(frozen=True)
class PipelinePlan:
    """The data pipeline to time: the first ``samples`` images of LSPET at ``lspet`` (relative paths from the
    working directory), ``workers`` spawned DataLoader workers (None: usable cores), ``batches`` batches per
    round, the crop cache in ``cache_dir`` (None: a temporary folder)."""

    lspet: Path = Path("..") / "shared" / "data" / "lspet"
    workers: int | None = None
    samples: int = 640
    batches: int = 20
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lspet", Path(self.lspet))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    def found(self) -> bool:
        """Whether LSPET is where the plan says (its joints.mat)."""
        return (self.lspet / "joints.mat").is_file()


def _endless(loader: Any) -> Iterator[Any]:
    while True:
        yield from loader


def time_pipeline(
    lspet: Path,
    size: tuple[int, int],
    batch: int,
    workers: int,
    samples: int,
    batches: int,
    rounds: int,
    cache_dir: Path,
    cache_size: int | None,
    cache_quality: int,
) -> dict[str, Any]:
    """Images per second that the training DataLoader delivers: ``rounds`` back-to-back runs of ``batches`` batches.

    Timed as one continuous stream after the workers start and their first prefetched batches are drained,
    so the numbers are the steady state, not the prefetch queue.
    """
    records = load_lspet_records(lspet, first=1, last=samples)
    start = time.perf_counter()
    cache = CropCache(cache_dir, max_side=cache_size, quality=cache_quality, workers=0, progress=False)
    ds = TopDownDataset(records, LSP14, input_size=size, train=True, cache=cache, seed=0)
    cache_s = time.perf_counter() - start
    if len(ds) < batch:
        raise ValueError(f"the data pipeline needs at least one batch: {len(ds)} samples < batch {batch}")
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0, multiprocessing_context="spawn" if workers else None,
                        generator=torch.Generator().manual_seed(0))
    stream = _endless(loader)
    start = time.perf_counter()
    next(stream)
    startup = time.perf_counter() - start
    for _ in range(2 * workers):  # what the workers prefetched while starting
        next(stream)
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batches):
            next(stream)
        per_round.append(batches * batch / (time.perf_counter() - start))
    del stream, loader
    return {
        "input": format_size(size), "batch": batch, "workers": workers, "samples": len(ds),
        "batches_per_round": batches, "rounds": rounds, "images_per_s": statistics.median(per_round),
        "round_images_per_s": per_round, "startup_s": startup, "cache_open_s": cache_s,
        "cache_size": cache_size, "cache_quality": cache_quality,
    }

