"""Training speed on a CPU: whole steps of the released formulation against our default path and each lever.

A step is what ``tpose train`` runs per batch: forward, ``tpose.engine.losses.masked_mse``, backward and
an Adam step (random inputs and targets; speed does not depend on them). Configurations are the
reference plus levers, joined with ``+``:

- ``reference``: the released code's formulation: fp32, eager, NCHW (contiguous). It is our model called
  with ``return_attention=True``: every layer computes ``softmax(Q K^T / sqrt(e))`` explicitly, applies
  attention dropout and multiplies by V, and keeps the head-averaged map, as the released
  ``nn.MultiheadAttention`` (``need_weights=True`` by default) does; the returned maps are discarded.
- ``channels_last``: model and input batch in channels_last memory format (the input converted in every
  step, as ``tpose train`` does).
- ``fused``: ``model(x)``, i.e. ``F.scaled_dot_product_attention`` instead of the explicit softmax. On a
  CPU, PyTorch takes its fused (flash) kernel only without dropout; in training the attention dropout
  (0.1, as released) sends it to the unfused math kernel.
- ``fast_dropout``: ``tpose.models.dropout``: dropout masks from 16 random bits per element instead of
  PyTorch's per-element Bernoulli draw on a CPU (same drop probability to 1/65536, unbiased); with
  ``fused`` and attention dropout > 0 the attention runs the explicit softmax with that mask.
- ``attn_dropout0``: attention-weight dropout set to 0 (a change of the released recipe), which lets
  ``fused`` run the flash kernel in training.
- ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the forward (the loss in fp32), as
  ``tpose train`` with ``train.amp=bf16``. On CPUs without native bf16 kernels (AVX2 only) a step costs
  10-20 fp32 steps: there it runs ``--bf16-steps`` steps in ``--bf16-rounds`` rounds, no warm-up, and only
  at ``--bf16-sizes``.
- ``compile``: ``torch.compile`` of the model; the first compiled step (tracing and code generation for
  forward and backward) is timed separately from the steady state, under ``--compile-timeout``.
- ``default``: what ``tpose train`` does on this machine (``tpose.engine.config.DEFAULTS``: channels_last,
  fused attention, ``resolve_amp("auto", cpu)``, compile off).

``reference`` and ``default`` are always timed; ``--levers`` adds configurations (default: each lever alone
on top of the reference, and fused with attention dropout 0). Per (model, input size) the configurations
run round-robin, ``--steps`` steps each per round, after ``--warmup`` untimed steps; a configuration's step
time is the median over rounds. The data pipeline (``TopDownDataset`` on real LSPET images with the crop
cache, released augmentation, a ``DataLoader`` with ``--workers`` spawned workers, batch ``--batch``) is
timed alone per input size and compared with the default step (goal: at least 1.5x its images/s; in a
real run the workers share the cores with the step).

    python benchmarks/bench_train.py --models transpose_r_a4 transpose_h_s --sizes 128x96 256x192 \\
        --batch 16 --steps 1 --rounds 3 --bf16-sizes 128x96
"""

from __future__ import annotations

import argparse
import copy
import gc
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from tpose.data import LSP14, CropCache, TopDownDataset, load_lspet_records
from tpose.engine.config import DEFAULTS
from tpose.engine.losses import masked_mse
from tpose.engine.train import resolve_amp
from tpose.models import build_model, list_variants
from tpose.models.dropout import set_fast_dropout
from tpose.models.encoder import SelfAttention

from ..utils.sizes import parse_size
from .common import (
    TimeLimitExceeded,
    cpu_features,
    fmt,
    interleaved,
    machine_info,
    markdown_table,
    peak_rss_bytes,
    summarize,
    time_limit,
    usable_cores,
    write_json,
    write_markdown,
)

# run from the repository root: results go to benchmarks/results, data is ../shared/data
REPO = Path(".")
DEFAULT_OUT = REPO / "benchmarks" / "results"
DEFAULT_LSPET = Path("..") / "shared" / "data" / "lspet"
LEVERS = ("channels_last", "fused", "fast_dropout", "attn_dropout0", "bf16", "compile")
DEFAULT_LEVERS = ("channels_last", "fused", "fast_dropout", "fused+fast_dropout", "fused+attn_dropout0", "bf16",
                  "compile")
MODELS = ("transpose_r_a4", "transpose_h_s")
SIZES = ((128, 96), (256, 192))
STEP_GOAL = ("transpose_r_a4", (128, 96), 2.0)  # default step >= 2x the reference step
LEVER_AT_SKIP = "levers timed only at lever_at"
PIPELINE_GOAL = 1.5  # data pipeline images/s >= 1.5x the default step's
# configurations that materialise [B, heads, L, L] matrices are skipped where they would need more than this share
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class StepConfig:
    """One way of running a training step: a name and the levers it turns on."""

    name: str
    levers: frozenset[str]

    def has(self, lever: str) -> bool:
        return lever in self.levers

    @property
    def flash(self) -> bool:
        """Whether attention runs the fused kernel without an [L, L] matrix (CPU flash needs dropout 0)."""
        return self.has("fused") and self.has("attn_dropout0")


@dataclass(frozen=True)
class StepPlan:
    """How many steps each configuration runs: ``steps`` per round over ``rounds`` after ``warmup``.

    Where ``bf16_is_slow`` (CPUs without native bf16 kernels, where one step costs 10-20 fp32 steps), bf16
    configurations run ``bf16_steps`` per round in the first ``bf16_rounds`` rounds only, without warm-up
    (their first step was ~4% slower than the next ones here, far below the effect measured).
    """

    steps: int = 1
    rounds: int = 3
    warmup: int = 1
    bf16_steps: int = 1
    bf16_rounds: int = 1
    compile_timeout: float | None = 900.0
    bf16_is_slow: bool = True

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


def default_levers() -> frozenset[str]:
    """The levers ``tpose train`` turns on here with its default config."""

    train = DEFAULTS["train"]
    on = {"fused"}
    if train.get("fast_dropout", True):
        on.add("fast_dropout")
    if train.get("channels_last", True):
        on.add("channels_last")
    if resolve_amp(train["amp"], torch.device("cpu")) == torch.bfloat16:
        on.add("bf16")
    if train.get("compile"):
        on.add("compile")
    return frozenset(on)


def parse_config(name: str, default: frozenset[str] | None = None) -> StepConfig:
    """``"channels_last+bf16"`` -> its levers; ``reference`` adds none, ``default`` adds what tpose train uses."""
    levers: set[str] = set()
    for part in name.split("+"):
        part = part.strip()
        if part == "reference":
            continue
        if part == "default":
            levers |= default if default is not None else default_levers()
        elif part in LEVERS:
            levers.add(part)
        else:
            raise ValueError(f"unknown lever {part!r} in {name!r}; known: reference, default, {', '.join(LEVERS)}")
    return StepConfig(name, frozenset(levers))


def configurations(levers: Sequence[str], default: frozenset[str]) -> list[StepConfig]:
    """reference, default, then the requested ones, without two of the same levers (the first name wins)."""
    out: list[StepConfig] = []
    for name in ["reference", "default", *levers]:
        cfg = parse_config(name, default)
        if all(c.levers != cfg.levers for c in out):
            out.append(cfg)
    return out


def attention_bytes(model: torch.nn.Module, size: tuple[int, int], batch: int, cfg: StepConfig) -> int:
    """Rough peak of the [B, heads, L, L] tensors a step keeps for backward (0 with the flash kernel).

    Per layer: the softmax output, the dropout mask and the dropped weights; the explicit path also
    keeps the head-averaged map it returns.
    """
    if cfg.flash:
        return 0
    c = model.config
    stride = model.backbone_stride
    tokens = (size[0] // stride) * (size[1] // stride)
    per_head = batch * tokens * tokens * 4
    kept = c.num_layers * 3 * c.num_heads * per_head
    if not cfg.has("fused"):
        kept += c.num_layers * per_head
    return kept + 2 * c.num_heads * per_head  # one layer's logits and softmax while it runs


def _build_step(
    base: torch.nn.Module, cfg: StepConfig, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, lr: float
) -> tuple[Callable[[], torch.Tensor], torch.nn.Module]:
    """A no-argument training step for ``cfg`` on its own copy of ``base`` and its own Adam."""

    model = copy.deepcopy(base).train()
    set_fast_dropout(model, cfg.has("fast_dropout"))
    if cfg.has("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if cfg.has("attn_dropout0"):
        for m in model.modules():
            if isinstance(m, SelfAttention):
                m.dropout = 0.0
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    net = torch.compile(model) if cfg.has("compile") else model
    explicit = not cfg.has("fused")
    cl = cfg.has("channels_last")
    amp = cfg.has("bf16")

    def step() -> torch.Tensor:
        images = x.contiguous(memory_format=torch.channels_last) if cl else x
        with torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext():
            heatmaps = net(images, return_attention=True)[0] if explicit else net(images)
        loss = masked_mse(heatmaps, target, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step, model


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
    total_ram: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Rows for one (model, input size): each configuration's median step time, interleaved over rounds.

    ``skip`` maps configuration names not to time here to the reason recorded in their rows.
    """

    torch.manual_seed(0)
    base = build_model(name, input_size=size, **model_overrides).train()
    k = base.config.num_keypoints
    x = torch.randn(batch, 3, *size)
    target = torch.rand(batch, k, size[0] // 4, size[1] // 4)
    weight = torch.ones(batch, k)
    params = sum(p.numel() for p in base.parameters())
    label = f"{size[0]}x{size[1]}"
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
        if total_ram and need > MEMORY_SHARE * total_ram:
            row["skipped"] = f"its attention matrices need ~{need / 2**30:.1f} GiB"
            say(f"  {cfg.name}: skipped ({row['skipped']})")
            continue
        warmup, n, rounds = plan.shape(cfg)
        try:
            step, _model = _build_step(base, cfg, x, target, weight, lr=1e-4)
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
        "input": f"{size[0]}x{size[1]}", "batch": batch, "workers": workers, "samples": len(ds),
        "batches_per_round": batches, "rounds": rounds, "images_per_s": statistics.median(per_round),
        "round_images_per_s": per_round, "startup_s": startup, "cache_open_s": cache_s,
        "cache_size": cache_size, "cache_quality": cache_quality,
    }


def run_train_benchmark(
    models: Sequence[str] = MODELS,
    sizes: Sequence[tuple[int, int]] = SIZES,
    batch: int = 16,
    steps: int = 1,
    rounds: int = 3,
    levers: Sequence[str] = DEFAULT_LEVERS,
    threads: int | None = None,
    out: str | Path | None = DEFAULT_OUT,
    warmup: int = 1,
    bf16_steps: int = 1,
    bf16_rounds: int = 1,
    bf16_sizes: Sequence[tuple[int, int]] | None = None,
    lever_at: Sequence[tuple[str, tuple[int, int]]] | None = None,
    compile_timeout: float | None = 900.0,
    data: bool = True,
    lspet: str | Path = DEFAULT_LSPET,
    workers: int | None = None,
    data_samples: int = 640,
    data_batches: int = 20,
    cache_dir: str | Path | None = None,
    model_overrides: dict[str, Any] | None = None,
    command: str | None = None,
    note: str = "",
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Everything ``tpose bench --train`` does; returns the results and, unless ``out`` is None, writes
    ``train_speed.json`` and ``train_speed.md`` there.

    ``sizes``: (H, W) inputs; ``levers``: configurations besides reference and default (see the module
    doc); ``threads``: torch intra-op threads (default: usable cores); ``warmup``: untimed steps per
    configuration; ``bf16_steps``, ``bf16_rounds``: steps per round and rounds of bf16 configurations
    where they are slow (no native bf16 kernels); ``bf16_sizes``: the sizes at which bf16 configurations
    run (default: all); ``lever_at``: (model, (H, W)) pairs at which the configurations besides reference
    and default run (default: everywhere; elsewhere their rows say why they were not timed);
    ``compile_timeout``: seconds
    allowed for the first compiled step; ``data``: also time the data pipeline on LSPET at ``lspet``
    (skipped with a note if absent) with ``workers`` (default: usable cores) over the first
    ``data_samples`` images, ``data_batches`` batches per round, crop cache in ``cache_dir`` (default: a
    temporary folder); ``model_overrides``: architecture overrides for every model (tests use tiny ones);
    ``command``: the command line to record (default: this process's).
    """

    say = progress or (lambda _msg: None)
    names = list(models)
    unknown = [n for n in names if n not in list_variants()]
    if unknown or not names:
        raise ValueError(f"unknown models {unknown or names}; available: {', '.join(list_variants())}")
    sizes = [(int(h), int(w)) for h, w in sizes]
    bad = [s for s in sizes if s[0] % 4 or s[1] % 4 or min(s) <= 0]
    if bad or not sizes:
        raise ValueError(f"input sizes must be positive multiples of 4 (HxW), got {bad or sizes}")
    if int(batch) < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    default = default_levers()
    configs = configurations(levers, default)
    bf16_at = None if bf16_sizes is None else {(int(h), int(w)) for h, w in bf16_sizes}
    lever_pairs = None if lever_at is None else {(str(m), (int(hw[0]), int(hw[1]))) for m, hw in lever_at}
    threads = int(threads or usable_cores())
    workers = usable_cores() if workers is None else int(workers)
    torch.set_num_threads(threads)
    overrides = dict(model_overrides or {})
    started = time.perf_counter()
    machine = machine_info(threads)
    machine["cpu_features"] = cpu_features()
    machine["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    try:
        machine["mkldnn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        machine["mkldnn_bf16_supported"] = None
    amp = resolve_amp(DEFAULTS["train"]["amp"], torch.device("cpu"))
    plan = StepPlan(int(steps), int(rounds), int(warmup), int(bf16_steps), int(bf16_rounds), compile_timeout,
                    bf16_is_slow=not machine["mkldnn_bf16_supported"])
    rows: list[dict[str, Any]] = []
    pipeline: list[dict[str, Any]] = []
    data_note = ""
    lspet = Path(lspet)
    if data and not (lspet / "joints.mat").is_file():
        data_note = f"data pipeline not timed: LSPET not found at {lspet} (joints.mat missing)"
        say(data_note)
        data = False
    cache_size = DEFAULTS["data"]["cache_size"]
    cache_quality = int(DEFAULTS["data"]["cache_quality"])
    with tempfile.TemporaryDirectory(prefix="tpose-bench-train-") as tmp:
        for size in sizes:
            for name in names:
                say(f"{name} at {size[0]}x{size[1]}, batch {batch}, {threads} threads:")
                # reference and default are always timed, even where the default itself uses bf16
                skip = {} if bf16_at is None or size in bf16_at else {
                    c.name: "bf16 not timed at this size (bf16_sizes)" for c in configs
                    if c.has("bf16") and c.name not in ("reference", "default")}
                if lever_pairs is not None and (name, size) not in lever_pairs:
                    skip.update({c.name: LEVER_AT_SKIP for c in configs
                                 if c.name not in ("reference", "default")})
                rows += time_steps(name, size, configs, batch, plan, overrides, skip,
                                   machine.get("memory_bytes") or 0, say)
            if data:
                say(f"data pipeline at {size[0]}x{size[1]}, {workers} worker(s)...")
                res = time_pipeline(lspet, size, batch, workers, data_samples, data_batches, rounds,
                                    Path(cache_dir) if cache_dir else Path(tmp), cache_size, cache_quality)
                for row in rows:
                    if row["input"] == res["input"] and row["config"] == "default" and "images_per_s" in row:
                        res.setdefault("ratio_to_default_step", {})[row["model"]] = (
                            res["images_per_s"] / row["images_per_s"])
                say(f"  {res['images_per_s']:.1f} img/s (start-up {res['startup_s']:.1f} s)")
                pipeline.append(res)
    machine["load_average_after"] = machine_info(threads).get("load_average")
    results: dict[str, Any] = {
        "benchmark": "train_speed",
        "command": command if command is not None else shlex.join([sys.executable, *sys.argv]),
        "models": names,
        "sizes": [f"{h}x{w}" for h, w in sizes],
        "batch": batch,
        "steps": steps,
        "rounds": rounds,
        "warmup": warmup,
        "bf16_steps": bf16_steps,
        "bf16_rounds": bf16_rounds,
        "bf16_sizes": None if bf16_at is None else [f"{h}x{w}" for h, w in sorted(bf16_at)],
        "bf16_is_slow": plan.bf16_is_slow,
        "lever_at": None if lever_pairs is None else [f"{m}@{h}x{w}" for m, (h, w) in sorted(lever_pairs)],
        "compile_timeout_s": compile_timeout,
        "threads": threads,
        "workers": workers,
        "model_overrides": overrides,
        "configs": {c.name: sorted(c.levers) for c in configs},
        "default_levers": sorted(default),
        "resolve_amp_auto_cpu": None if amp is None else str(amp).replace("torch.", ""),
        "machine": machine,
        "note": "; ".join(t for t in (note, data_note) if t),
        "peak_rss_bytes": peak_rss_bytes(),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "pipeline": pipeline,
    }
    results["goals"] = judge_goals(rows, pipeline)
    if out is not None:
        folder = Path(out)
        results["files"] = [str(write_json(folder / "train_speed.json", results)),
                            str(write_markdown(folder / "train_speed.md", "Training speed (CPU)", _markdown(results)))]
    say(goal_text(results["goals"]))
    return results


def judge_goals(rows: list[dict[str, Any]], pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step goal (default vs reference for r_a4 at 128x96) and the pipeline goal for every timed pair."""
    name, size, need = STEP_GOAL
    label = f"{size[0]}x{size[1]}"
    match = [r for r in rows if r["model"] == name and r["input"] == label and r["config"] == "default"]
    got = match[0].get("speedup_vs_reference") if match else None
    goals = [{"goal": "default step vs reference step", "model": name, "input": label, "need": need, "got": got,
              "met": None if got is None else got >= need}]
    for res in pipeline:
        for model, ratio in sorted(res.get("ratio_to_default_step", {}).items()):
            goals.append({"goal": "data pipeline vs default step", "model": model, "input": res["input"],
                          "need": PIPELINE_GOAL, "got": ratio, "met": ratio >= PIPELINE_GOAL})
    return goals


def goal_text(goals: list[dict[str, Any]]) -> str:
    lines = []
    for g in goals:
        if g["got"] is None:
            continue
        verdict = "met" if g["met"] else "MISSED"
        lines.append(f"goal: {g['goal']} >= {g['need']}x for {g['model']} at {g['input']}: {g['got']:.2f}x ({verdict})")
    return "\n".join(lines)


def _markdown(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    feats = ", ".join(k for k, v in (m.get("cpu_features") or {}).items() if v) or "unknown"
    bf16 = ""
    if results["bf16_is_slow"]:
        bf16 = (f" (bf16, slow here: {min(results['steps'], results['bf16_steps'])} step(s) in "
                f"{min(results['rounds'], results['bf16_rounds'])} round(s), no warm-up)")
    head = [
        f"Measured {m['time_utc']} UTC on {m['cpu']} ({m['usable_cores']} usable cores; {feats}; torch CPU "
        f"capability {m.get('cpu_capability')}), torch {m['torch']}, {results['threads']} threads. Batch "
        f"{results['batch']}; per configuration {results['warmup']} untimed warm-up step(s), then "
        f"{results['rounds']} interleaved round(s) of {results['steps']} step(s){bf16}; median step time over "
        f"rounds. Load average before {m.get('load_average')}, after {m.get('load_average_after')}. "
        f"Took {results['seconds']:.0f} s.",
        f"`resolve_amp(\"auto\", cpu)` here: {results['resolve_amp_auto_cpu'] or 'None (fp32)'} "
        f"(mkldnn bf16 supported: {m.get('mkldnn_bf16_supported')}); so **default** = "
        f"{' + '.join(results['default_levers'])}.",
        f"Command: `{results['command']}`",
    ]
    if results.get("model_overrides"):
        head.append(f"Model overrides: `{results['model_overrides']}`")
    if results.get("note"):
        head.append(f"**Note:** {results['note']}")
    if results.get("lever_at"):
        where = ", ".join(results["lever_at"])
        head.append(f"Configurations besides reference and default were timed only at {where}.")
    headers = ["model", "input", "config", "levers", "ms/step", "img/s", "x ref", "rounds", "spread", "compile (s)"]
    table = []
    for r in results["rows"]:
        levers = " + ".join(r["levers"]) or "–"
        if r.get("skipped") == LEVER_AT_SKIP:
            continue
        if "median_s" not in r:
            why = r.get("skipped") and "skipped: " + r["skipped"] or "failed: " + r.get("error", "").splitlines()[0]
            table.append([r["model"], r["input"], r["config"], levers, why[:160], "", "", "", "", ""])
            continue
        table.append([
            r["model"], r["input"], r["config"], levers, fmt(r["ms_per_step"]), fmt(r["images_per_s"], 2),
            "" if r.get("speedup_vs_reference") is None else f"{r['speedup_vs_reference']:.2f}",
            f"{r['n']} x {r['steps_per_round']}", f"{100 * r['spread']:.0f}%", fmt(r.get("compile_s")),
        ])
    sections = ["\n\n".join(head), markdown_table(headers, table)]
    errors = [r for r in results["rows"] if r.get("error")]
    if errors:
        sections.append("Failures:\n\n" + "\n".join(
            f"- {r['model']} {r['input']} {r['config']}: `{r['error'].splitlines()[0][:300]}`" for r in errors))
    if results["pipeline"]:
        models = sorted({k for p in results["pipeline"] for k in p.get("ratio_to_default_step", {})})
        p_headers = ["input", "workers", "batch", "img/s", "start-up (s)", *[f"vs {n} default step" for n in models]]
        p_rows = [[p["input"], p["workers"], p["batch"], fmt(p["images_per_s"]), fmt(p["startup_s"]),
                   *[("" if n not in p.get("ratio_to_default_step", {}) else f"{p['ratio_to_default_step'][n]:.1f}x")
                     for n in models]] for p in results["pipeline"]]
        sections.append(
            f"Data pipeline alone: TopDownDataset (train=True, released augmentation) on the first "
            f"{results['pipeline'][0]['samples']} LSPET images with the crop cache (max side "
            f"{results['pipeline'][0]['cache_size']}, JPEG quality {results['pipeline'][0]['cache_quality']}), "
            f"DataLoader with spawned workers, median of {results['rounds']} run(s) of "
            f"{results['pipeline'][0]['batches_per_round']} batches after start-up. In training the workers "
            f"share the cores with the step, so the ratio is an upper bound.\n\n" + markdown_table(p_headers, p_rows))
    sections.append(
        "Configurations: **reference** = the released formulation (fp32, eager, NCHW; our model called with "
        "return_attention=True: explicit softmax(QK^T/sqrt(e)) with attention dropout, head-averaged maps kept and "
        "discarded); **channels_last** = model and input in channels_last; **fused** = model(x), "
        "F.scaled_dot_product_attention (on a CPU with attention dropout > 0 it runs the unfused math kernel); "
        "**fast_dropout** = dropout masks from 16 random bits per element (tpose.models.dropout) instead of "
        "PyTorch's per-element Bernoulli draw; with fused and attention dropout > 0 the attention runs the explicit "
        "softmax with that mask; **attn_dropout0** = attention-weight dropout 0 (a recipe change; lets fused run "
        "the flash kernel); "
        "**bf16** = torch.autocast(\"cpu\", bfloat16) around the forward; **compile** = torch.compile, compile "
        "(s) = first step minus the median step; **default** = what `tpose train` does here. A step = forward, "
        "masked MSE, backward, Adam step on random data.")
    goals = goal_text(results["goals"])
    if goals:
        sections.append("Goals:\n\n" + "\n".join(f"- {line}" for line in goals.splitlines()))
    return sections


def parse_model_size(text: str) -> tuple[str, tuple[int, int]]:
    model, sep, size = text.partition("@")
    if not sep or not model:
        raise argparse.ArgumentTypeError(f"expected MODEL@HxW such as transpose_r_a4@128x96, got {text!r}")
    return model, parse_size(size)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="TransPose CPU training speed: reference vs default vs each lever")
    p.add_argument("--models", nargs="+", default=list(MODELS), help="registry names (default: %(default)s)")
    p.add_argument("--sizes", nargs="+", type=parse_size, default=list(SIZES), metavar="HxW",
                   help="input sizes (default: 128x96 256x192)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--steps", type=int, default=1, help="timed steps per configuration per round (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--levers", nargs="*", default=list(DEFAULT_LEVERS),
                   help="configurations besides reference and default: levers joined with + out of "
                        f"{', '.join(LEVERS)}, 'reference' or 'default' (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: usable cores)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for train_speed.json and train_speed.md")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per configuration (default 1)")
    p.add_argument("--bf16-steps", type=int, default=1, help="steps per round of bf16 configurations (default 1)")
    p.add_argument("--bf16-rounds", type=int, default=1, help="rounds bf16 configurations take part in (default 1)")
    p.add_argument("--bf16-sizes", nargs="+", type=parse_size, default=None, metavar="HxW",
                   help="sizes at which to time bf16 configurations (default: all of --sizes)")
    p.add_argument("--lever-at", nargs="+", type=parse_model_size, default=None, metavar="MODEL@HxW",
                   help="time the --levers configurations only at these model/size pairs (default: everywhere)")
    p.add_argument("--compile-timeout", type=float, default=900.0, help="seconds for the first compiled step")
    p.add_argument("--no-data", action="store_true", help="skip the data pipeline")
    p.add_argument("--lspet", default=str(DEFAULT_LSPET), help="LSPET root (joints.mat, images/)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: usable cores)")
    p.add_argument("--data-samples", type=int, default=640, help="LSPET images in the pipeline's data set")
    p.add_argument("--data-batches", type=int, default=20, help="batches per pipeline round (default 20)")
    p.add_argument("--cache-dir", default=None, help="crop cache folder (default: a temporary one)")
    p.add_argument("--note", default="", help="text stored with the results, e.g. about other jobs running")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    results = run_train_benchmark(
        models=args.models, sizes=args.sizes, batch=args.batch, steps=args.steps, rounds=args.rounds,
        levers=args.levers, threads=args.threads, out=args.out, warmup=args.warmup, bf16_steps=args.bf16_steps,
        bf16_rounds=args.bf16_rounds, bf16_sizes=args.bf16_sizes, lever_at=args.lever_at,
        compile_timeout=args.compile_timeout,
        data=not args.no_data, lspet=args.lspet, workers=args.workers, data_samples=args.data_samples,
        data_batches=args.data_batches, cache_dir=args.cache_dir, note=args.note,
        command=shlex.join(["python", "benchmarks/bench_train.py", *argv]),
    )
    for f in results.get("files", []):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
