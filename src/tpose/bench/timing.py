"""Timing on a shared machine: calls interleaved round-robin, and the median of their times.

Interleaving (A, B, C, A, B, C, ...) rather than timing each path in one block keeps slow drifts of a
shared machine (another job, thermal state) from landing on one path only; the order also rotates each
round so no path always runs right after the same neighbour. Warm-up calls are not timed. Used by
``tpose bench`` and by the project's benchmark scripts (``benchmarks/``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def interleaved(
    fns: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured round-robin ``repeats`` times after ``warmup`` calls each.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read, for asynchronous devices.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    if sync is not None:
        sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - start)
    return times


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the spread (max - min) / median of repeated timings."""
    if not seconds:
        raise ValueError("no timings to summarise")
    med = statistics.median(seconds)
    return {
        "median_s": med,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "spread": (max(seconds) - min(seconds)) / med if med > 0 else 0.0,
        "n": len(seconds),
    }
