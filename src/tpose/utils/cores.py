"""How many CPU cores this process may use: the one count thread defaults are derived from."""

from __future__ import annotations

import os
import time

import torch


def usable_cores() -> int:
    """The cores in this process's affinity mask (a container's or taskset's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have spent since boot, summed over cores (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # all but idle and iowait
    return busy / float(os.sysconf("SC_CLK_TCK"))


class CoreBudget:
    """How many threads to run with now: the usable cores less those other processes kept busy lately.

    OpenMP threads that wait for a sibling descheduled by another process's work spin instead of sleeping
    (torch reads ``OMP_WAIT_POLICY`` when it loads, too early for tpose to set it), which made a 2-thread
    forward pass 2.9x slower beside one busy process here, where one thread was only 1.5x slower. So before
    each batch the budget compares the machine's busy CPU time with this process's own over the time since
    the previous call, and leaves the cores others use alone. Reading ``/proc/stat`` costs microseconds;
    without it (not Linux) the budget is simply ``usable_cores()``.
    """

    def __init__(self, cores: int | None = None, min_interval_s: float = 0.05) -> None:
        self.cores = int(cores or usable_cores())
        self.min_interval_s = float(min_interval_s)
        self._last: tuple[float, float, float] | None = None
        self._threads = self.cores
        self.others = 0.0  # cores other processes kept busy over the last interval

    def threads(self) -> int:
        """Threads to use for the next piece of work (1..cores)."""
        busy = _machine_busy_seconds()
        if busy is None or self.cores == 1:
            return self.cores
        now, own = time.perf_counter(), time.process_time()
        if self._last is not None and now - self._last[2] >= self.min_interval_s:
            b0, o0, t0 = self._last
            self.others = max(0.0, (busy - b0) - (own - o0)) / (now - t0)
            self._threads = max(1, min(self.cores, self.cores - int(self.others + 0.5)))
            self._last = (busy, own, now)
        elif self._last is None:
            self._last = (busy, own, now)
        return self._threads


def native_bf16(device: object = "cpu") -> bool:
    """True where bf16 arithmetic runs natively (a CUDA GPU with bf16, or a CPU with AVX-512 BF16 / AMX),
    i.e. where bf16 autocast is faster than fp32 rather than 10-20x slower (measured on AVX2-only CPUs)."""
    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
