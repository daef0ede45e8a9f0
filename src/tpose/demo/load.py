"""A bounded load test of the demo app: concurrent sessions from loopback clients, each uploading photos one
request at a time through Gradio's own client, while the app serves them in turn from one shared engine.

It stops by itself (a fixed number of requests, each with a timeout), talks only to 127.0.0.1, and reports the
requests, their p50/p95 seconds from the client's side, the errors, and the process's peak memory (the server
runs in this process, so the peak covers the model, loaded once, and every request in flight).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .app import launch_app
from .options import DemoOptions

API_NAME = "/analyse"


@dataclass(frozen=True)
class LoadPlan:
    """How much load: ``sessions`` clients at once, each sending ``photos_per_session`` one-photo requests."""

    sessions: int = 8
    photos_per_session: int = 5
    timeout_s: float = 600.0  # one request's limit; the run cannot last longer than requests x this


@dataclass
class LoadReport:
    """What the run measured (seconds from the client's side; memory as the kernel's peak resident size)."""

    sessions: int
    requests: int
    errors: list[str]
    persons: int
    p50_s: float
    p95_s: float
    max_s: float
    wall_s: float
    peak_rss_mb: float
    rss_before_mb: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _session(url: str, photos: Sequence[Path], plan: LoadPlan, weights: str) -> tuple[list[float], list[str], int]:
    from gradio_client import Client, handle_file  # the demo extra's client, optional like Gradio itself

    client = Client(url, verbose=False)
    seconds: list[float] = []
    errors: list[str] = []
    persons = 0
    for photo in photos:
        t0 = time.perf_counter()
        try:
            job = client.submit([handle_file(str(photo))], None, weights, None, False, api_name=API_NAME)
            out = job.result(timeout=plan.timeout_s)
            text = str(out[0])
            persons += sum(int(word) for word in text.split(" person(s)")[0].split()[-1:] if word.isdigit())
            if "error" in text.lower():
                errors.append(text)
        except Exception as err:  # any failure is counted, the run goes on
            errors.append(f"{type(err).__name__}: {err}")
        seconds.append(time.perf_counter() - t0)
    return seconds, errors, persons


def run_load(photos: Sequence[str | Path], plan: LoadPlan | None = None, options: DemoOptions | None = None
             ) -> LoadReport:
    """Start the app on loopback, run ``plan`` against it with ``photos`` (used in turn), stop it, report."""
    plan = plan or LoadPlan()
    options = options or DemoOptions()
    if options.host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the load test serves on loopback only, got host {options.host!r}")
    files = [Path(p) for p in photos]
    if not files:
        raise ValueError("the load test needs at least one photo")
    rss_before = _peak_rss_mb()
    demo = launch_app(options, block=False)
    try:
        url = demo.local_url
        weights = options.weights[0].label
        lists = [[files[(s + k) % len(files)] for k in range(plan.photos_per_session)] for s in range(plan.sessions)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(plan.sessions, thread_name_prefix="demo-load") as pool:
            results = list(pool.map(lambda ps: _session(url, ps, plan, weights), lists))
        wall = time.perf_counter() - t0
    finally:
        demo.close()
    seconds = np.array([s for r in results for s in r[0]], dtype=np.float64)
    return LoadReport(
        sessions=plan.sessions,
        requests=int(seconds.size),
        errors=[e for r in results for e in r[1]],
        persons=sum(r[2] for r in results),
        p50_s=round(float(np.percentile(seconds, 50)), 3),
        p95_s=round(float(np.percentile(seconds, 95)), 3),
        max_s=round(float(seconds.max()), 3),
        wall_s=round(wall, 2),
        peak_rss_mb=round(_peak_rss_mb(), 1),
        rss_before_mb=round(rss_before, 1),
    )


__all__ = ["LoadPlan", "LoadReport", "run_load"]
