"""Timing training steps: every configuration of one (model, input size), interleaved round-robin.

Per (model, input size) the configurations run round-robin, ``steps`` steps each per round, after
``warmup`` untimed steps; a configuration's step time is the median over rounds. A configuration that
fails (a compile error, a compile over its time limit) is recorded with its error while the others go on;
one whose [B, heads, L, L] matrices would not fit in memory is skipped with the reason.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from common import TimeLimitExceeded, time_limit
from levers import StepConfig, attention_bytes, build_step

from tpose.bench.timing import interleaved, summarize
from tpose.models import build_model
from tpose.utils.sizes import format_size

# the reason recorded for configurations not timed at a (model, size) outside lever_at; reports leave them out
LEVER_AT_SKIP = "levers timed only at lever_at"
ALWAYS_TIMED = ("reference", "default")


@dataclass(frozen=True)
class StepPlan:
    """How many steps each configuration runs: ``steps`` per round over ``rounds`` after ``warmup``.

    Where ``bf16_is_slow`` (CPUs without native bf16 kernels, where one step costs 10-20 fp32 steps), bf16
    configurations run ``bf16_steps`` per round in the first ``bf16_rounds`` rounds only, without warm-up
    (their first step was ~4% slower than the next ones here, far below the effect measured). None: not
    decided yet (the training benchmark decides from the machine; ``shape`` takes it as fast).
    """

    steps: int = 1
    rounds: int = 3
    warmup: int = 1
    bf16_steps: int = 1
    bf16_rounds: int = 1
    compile_timeout: float | None = 900.0
    bf16_is_slow: bool | None = None

    def __post_init__(self) -> None:
        for what in ("steps", "rounds", "bf16_steps", "bf16_rounds"):
            if int(getattr(self, what)) < 1:
                raise ValueError(f"{what} must be at least 1, got {getattr(self, what)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")

    def shape(self, cfg: StepConfig) -> tuple[int, int, int]:
        """(warm-up steps, steps per round, rounds) of ``cfg``."""
        if cfg.has("bf16") and self.bf16_is_slow:
            return 0, min(self.steps, self.bf16_steps), min(self.rounds, self.bf16_rounds)
        return self.warmup, self.steps, self.rounds


def not_timed_here(
    configs: Sequence[StepConfig],
    model: str,
    size: tuple[int, int],
    bf16_sizes: Collection[tuple[int, int]] | None,
    lever_at: Collection[tuple[str, tuple[int, int]]] | None,
) -> dict[str, str]:
    """The configurations not to time at (``model``, ``size``), with the reason: bf16 ones away from
    ``bf16_sizes`` and, away from the ``lever_at`` pairs, all but reference and default (None: everywhere).

    reference and default are always timed, even where the default itself uses bf16.
    """
    skip: dict[str, str] = {}
    if bf16_sizes is not None and size not in bf16_sizes:
        skip.update({c.name: "bf16 not timed at this size (bf16_sizes)" for c in configs
                     if c.has("bf16") and c.name not in ALWAYS_TIMED})
    if lever_at is not None and (model, size) not in lever_at:
        skip.update({c.name: LEVER_AT_SKIP for c in configs if c.name not in ALWAYS_TIMED})
    return skip


def _repeat(step: Callable[[], torch.Tensor], n: int, rounds: int, losses: list[float]) -> Callable[[], None]:
    """``n`` steps per call for the first ``rounds`` calls, then nothing (those timings are dropped)."""
    def run() -> None:
        if len(losses) >= rounds:
            return
        for _ in range(n):
            loss = step()
        losses.append(float(loss))

    return run


def time_steps(
    name: str,
    size: tuple[int, int],
    configs: Sequence[StepConfig],
    batch: int,
    plan: StepPlan,
    model_overrides: dict[str, Any],
    skip: dict[str, str],
    memory_limit: float,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Rows for one (model, input size): each configuration's median step time, interleaved over rounds.

    ``skip`` maps configuration names not to time here to the reason recorded in their rows;
    configurations whose attention matrices would take more than ``memory_limit`` bytes are skipped
    (0: no limit).
    """

    torch.manual_seed(0)
    base = build_model(name, input_size=size, **model_overrides).train()
    k = base.config.num_keypoints
    x = torch.randn(batch, 3, *size)
    target = torch.rand(batch, k, size[0] // 4, size[1] // 4)
    weight = torch.ones(batch, k)
    params = sum(p.numel() for p in base.parameters())
    label = format_size(size)
    rows: dict[str, dict[str, Any]] = {}
    fns: dict[str, Callable[[], None]] = {}
    shapes: dict[str, tuple[int, int, int]] = {}
    losses: dict[str, list[float]] = {}
    for cfg in configs:
        row: dict[str, Any] = {"model": name, "input": label, "batch": batch, "config": cfg.name,
                               "levers": sorted(cfg.levers), "parameters": params}
        rows[cfg.name] = row
        if cfg.name in skip:
            row["skipped"] = skip[cfg.name]
            continue
        need = attention_bytes(base, size, batch, cfg)
        if memory_limit and need > memory_limit:
            row["skipped"] = f"its attention matrices need ~{need / 2**30:.1f} GiB"
            say(f"  {cfg.name}: skipped ({row['skipped']})")
            continue
        warmup, n, rounds = plan.shape(cfg)
        try:
            step, _model = build_step(base, cfg, x, target, weight, lr=1e-4)
            if cfg.has("compile"):
                say(f"  {cfg.name}: compiling (first step, limit {plan.compile_timeout or 0:g} s)...")
                start = time.perf_counter()
                with time_limit(plan.compile_timeout):
                    step()
                row["first_step_s"] = time.perf_counter() - start
            for _ in range(warmup):
                step()
        except (Exception, TimeLimitExceeded) as err:  # a failing lever (compile, memory) is reported; others go on
            row["error"] = f"{type(err).__name__}: {err}".strip()[:2000]
            say(f"  {cfg.name}: FAILED {row['error'].splitlines()[0][:200]}")
            if cfg.has("compile"):
                torch._dynamo.reset()
            continue
        shapes[cfg.name] = (warmup, n, rounds)
        losses[cfg.name] = []
        fns[cfg.name] = _repeat(step, n, rounds, losses[cfg.name])
    if fns:
        say(f"  timing {', '.join(fns)}: {plan.rounds} round(s), interleaved...")
        times = interleaved(fns, repeats=plan.rounds, warmup=0)
    else:
        times = {}
    ref = None
    for cfg_name, seconds in times.items():
        warmup, n, rounds = shapes[cfg_name]
        per_step = [t / n for t in seconds[:rounds]]
        s = summarize(per_step)
        row = rows[cfg_name]
        row.update(s)
        row["warmup_steps"] = warmup
        row["steps_per_round"] = n
        row["round_step_s"] = per_step
        row["ms_per_step"] = 1000 * s["median_s"]
        row["images_per_s"] = batch / s["median_s"]
        row["final_loss"] = losses[cfg_name][-1]
        if "first_step_s" in row:
            row["compile_s"] = max(0.0, row["first_step_s"] - s["median_s"])
        if cfg_name == "reference":
            ref = s["median_s"]
    for row in rows.values():
        if "median_s" in row:
            row["speedup_vs_reference"] = None if ref is None else ref / row["median_s"]
            say(f"  {row['config']:24s} {row['ms_per_step']:10.1f} ms/step {row['images_per_s']:8.2f} img/s"
                + ("" if ref is None else f"  x{row['speedup_vs_reference']:.2f}")
                + (f"  (compile {row['compile_s']:.1f} s)" if "compile_s" in row else ""))
    del fns, base
    gc.collect()
    if any(c.has("compile") for c in configs):
        torch._dynamo.reset()
    return list(rows.values())

