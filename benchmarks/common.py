"""Helpers shared by the benchmark scripts: peak RSS, child processes, machine facts, time limits, result files.

Interleaved timing and medians come from the library (``tpose.bench.timing``), which ``tpose bench`` uses too.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tpose.utils.cores import usable_cores
from tpose.utils.machine import cpu_model, proc_field


def _proc_kib_bytes(path: str, key: str) -> int | None:
    """A ``/proc`` field given in kB (``MemTotal:  24000 kB``) as bytes."""
    value = proc_field(path, key)
    try:
        return None if value is None else int(value.split()[0]) * 1024
    except (ValueError, IndexError):
        return None


def _memory_total_bytes() -> int | None:
    return _proc_kib_bytes("/proc/meminfo", "MemTotal:")


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """What the numbers were measured on, including the load average (other jobs disturb timings)."""
    import numpy as np
    import torch

    info: dict[str, Any] = {
        "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "threads": threads,
        "memory_bytes": _memory_total_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    return info


def matmul_peak_gflops(n: int = 2048, repeats: int = 5, threads: int | None = None, device: str = "cpu") -> float:
    """The machine's fp32 matrix-multiply rate (GFLOP/s): the best of ``repeats`` timed n x n x n products.

    The best, not the median: it is the ceiling the models' achieved rates are compared with. On CUDA
    (untested here) the clock is read after a synchronise, and TF32 is off so it stays an fp32 figure.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _best_matmul(n, repeats, device, cuda)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _best_matmul(n: int, repeats: int, device: str, cuda: bool) -> float:
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    torch.matmul(a, b, out=out)  # warm-up: thread pool, caches
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        if cuda:
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def current_rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc``; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    """The largest resident memory of this process so far.

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh with the process image. Not
    ``ru_maxrss``: Linux carries that over from the parent through fork and exec, so a child spawned by
    a big parent would report at least the parent's size. Elsewhere ``ru_maxrss`` (KiB; bytes on macOS).
    """
    hwm = _proc_kib_bytes("/proc/self/status", "VmHWM:")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if platform.system() == "Darwin" else peak * 1024)


def _child(fn: Callable[..., Any], args: tuple, kwargs: dict, queue: Any) -> None:
    try:
        result = fn(*args, **kwargs)
        queue.put(("ok", result, peak_rss_bytes()))
    except BaseException as err:  # the parent reports it; the child must not die silently
        queue.put(("error", f"{type(err).__name__}: {err}", peak_rss_bytes()))


def run_in_child(fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn(*args, **kwargs)`` in a fresh (spawned) process; its result and the child's peak RSS.

    A fresh process so each configuration's peak starts from a clean interpreter: the peak then
    includes the interpreter, torch and the model (see ``result`` for what ``fn`` measured itself).
    ``fn`` must be importable (defined at module level). Returns ``{"result", "peak_rss_bytes", "error"}``.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, kwargs, queue))
    proc.start()
    try:
        status, payload, peak = queue.get(timeout=timeout)
    except Exception as err:  # queue.Empty on timeout, or a child that died without reporting
        proc.kill()
        proc.join()
        return {"result": None, "peak_rss_bytes": None, "error": f"child gave no result ({type(err).__name__})"}
    proc.join()
    if status != "ok":
        return {"result": None, "peak_rss_bytes": peak, "error": payload}
    return {"result": payload, "peak_rss_bytes": peak, "error": None}


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path


def _looks_numeric(value: Any) -> bool:
    if value is None or isinstance(value, (int, float)):
        return True
    text = str(value).replace(",", "").strip()
    if text in ("", "–"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    def cell(v: Any) -> str:
        return "" if v is None else str(v).replace("|", "\\|")

    numeric = [all(_looks_numeric(r[i]) for r in rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path: str | Path, title: str, sections: Sequence[str]) -> Path:
    """``# title`` then each section (already Markdown), separated by blank lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections if s) + "\n")
    return path


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators, or an en dash when missing."""
    return "–" if value is None else f"{value:,.{digits}f}"


# instruction-set extensions that decide which low-precision kernels a CPU runs natively
class TimeLimitExceeded(BaseException):
    """Raised by :func:`time_limit`. A ``BaseException`` because libraries catch ``Exception`` broadly
    (torch.compile swallows a ``TimeoutError`` raised inside it and carries on compiling)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in the block once ``seconds`` have passed (e.g. a compile taking too long).

    A SIGALRM timer, so it acts only in the main thread on POSIX and fires between Python bytecodes
    (a long call into C ends first); elsewhere, or with ``seconds`` None or <= 0, the block runs unlimited.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise TimeLimitExceeded(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def busy_core() -> Iterator[int]:
    """Another process keeping one core busy (a Python busy loop) for the duration of the block; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
