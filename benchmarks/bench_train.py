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
- ``default``: what ``tpose train`` does on this machine (``tpose.engine.train_config.DEFAULTS``: channels_last,
  fused attention, ``resolve_amp("auto", cpu)``, compile off).

``reference`` and ``default`` are always timed; ``--levers`` adds configurations (default: each lever alone
on top of the reference, and fused with attention dropout 0). Per (model, input size) the configurations
run round-robin, ``--steps`` steps each per round, after ``--warmup`` untimed steps; a configuration's step
time is the median over rounds (``step_timing.py``). The data pipeline (``TopDownDataset`` on real
LSPET images at ``--lspet`` with the crop cache, released augmentation, a ``DataLoader`` with ``--workers``
spawned workers, batch ``--batch``) is timed alone per input size and compared with the default step
(``pipeline_timing.py``; in a real run the workers share the cores with the step).

The report (``train_report.py``) judges the goals it is given: ``--goal MODEL@HxW:NEED`` (the
default step at least NEED x the reference step; default ``transpose_r_a4@128x96:2``) and
``--pipeline-goal`` (the pipeline's images/s at least that many times the default step's; default 1.5);
``--no-goals`` judges none. In Python, ``run_train_benchmark(TrainBenchPlan(...), out=...)`` runs it.

    python benchmarks/bench_train.py --models transpose_r_a4 transpose_h_s --sizes 128x96 256x192 \\
        --batch 16 --steps 1 --rounds 3 --bf16-sizes 128x96
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from common import machine_info, peak_rss_bytes, usable_cores
from goals import Goal, add_goal_options, goals_asked, parse_goal
from levers import DEFAULT_LEVERS, LEVERS, StepConfig, configurations, default_levers, parse_config
from pipeline_timing import PipelinePlan, time_pipeline
from report import record_load_after, write_report
from step_timing import StepPlan, not_timed_here, time_steps
from train_report import goal_text, judge_goals, markdown

from tpose.engine.train import resolve_amp
from tpose.engine.train_config import DEFAULTS
from tpose.models import list_variants
from tpose.utils.machine import cpu_features
from tpose.utils.sizes import format_size, parse_size

DEFAULT_OUT = Path("benchmarks") / "results"  # relative to the working directory: run from the repository root


def _sizes(sizes: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    return tuple((int(h), int(w)) for h, w in sizes)


@dataclass(frozen=True)
class TrainBenchPlan:
    """What the training benchmark times and what its report judges; the defaults are ``bench_train.py``'s.

    ``models`` at each of ``sizes`` (H, W), batch ``batch``; ``levers``: the configurations besides
    reference and default; ``timing``: steps, rounds and warm-up per configuration (its ``bf16_is_slow``
    left None is decided from the machine); ``bf16_sizes``: the sizes at which bf16 configurations run
    (None: all); ``lever_at``: (model, (H, W)) pairs at which the configurations besides reference and
    default run (None: everywhere; elsewhere their rows say why they were not timed); ``threads``: torch
    intra-op threads (None: usable cores); ``model_overrides``: architecture overrides for every model
    (tests use tiny ones); ``pipeline``: the data pipeline timed beside the steps (None: not timed);
    ``step_goals``: default step vs reference step per (model, "HxW"); ``pipeline_goal``: the pipeline's
    images/s over the default step's (None: not judged); ``memory_share``: configurations whose attention
    matrices would need more than this share of RAM are skipped.
    """

    models: tuple[str, ...] = ("transpose_r_a4", "transpose_h_s")
    sizes: tuple[tuple[int, int], ...] = ((128, 96), (256, 192))
    batch: int = 16
    levers: tuple[str, ...] = DEFAULT_LEVERS
    timing: StepPlan = StepPlan()
    bf16_sizes: tuple[tuple[int, int], ...] | None = None
    lever_at: tuple[tuple[str, tuple[int, int]], ...] | None = None
    threads: int | None = None
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    pipeline: PipelinePlan | None = PipelinePlan()
    step_goals: tuple[Goal, ...] = (Goal("transpose_r_a4", "128x96", 2.0),)
    pipeline_goal: float | None = 1.5
    memory_share: float = 0.5

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("models", tuple(self.models))
        unknown = [n for n in self.models if n not in list_variants()]
        if unknown or not self.models:
            raise ValueError(f"unknown models {unknown or list(self.models)}; available: {', '.join(list_variants())}")
        put("sizes", _sizes(self.sizes))
        bad = [s for s in self.sizes if s[0] % 4 or s[1] % 4 or min(s) <= 0]
        if bad or not self.sizes:
            raise ValueError(f"input sizes must be positive multiples of 4 (HxW), got {bad or list(self.sizes)}")
        if int(self.batch) < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")
        put("levers", tuple(self.levers))
        for name in self.levers:
            parse_config(name, frozenset())  # names an unknown lever now rather than after the first timings
        if self.bf16_sizes is not None:
            put("bf16_sizes", _sizes(self.bf16_sizes))
        if self.lever_at is not None:
            put("lever_at", tuple((str(m), _sizes([hw])[0]) for m, hw in self.lever_at))
        put("model_overrides", dict(self.model_overrides))
        put("step_goals", tuple(self.step_goals))


def describe_machine(threads: int) -> dict[str, Any]:
    """``machine_info`` plus what decides the bf16 lever: SIMD extensions, torch's CPU capability, mkldnn bf16."""
    machine = machine_info(threads)
    machine["cpu_features"] = cpu_features()
    machine["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    try:
        machine["mkldnn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        machine["mkldnn_bf16_supported"] = None
    return machine


def _time_all(
    plan: TrainBenchPlan,
    timing: StepPlan,
    configs: Sequence[StepConfig],
    threads: int,
    workers: int,
    memory_limit: float,
    pipeline_plan: PipelinePlan | None,
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The step rows of every (model, size) and, per size, the data pipeline compared with each default step."""
    rows: list[dict[str, Any]] = []
    pipeline: list[dict[str, Any]] = []
    cache_size = DEFAULTS["data"]["cache_size"]
    cache_quality = int(DEFAULTS["data"]["cache_quality"])
    with tempfile.TemporaryDirectory(prefix="tpose-bench-train-") as tmp:
        for size in plan.sizes:
            for name in plan.models:
                say(f"{name} at {format_size(size)}, batch {plan.batch}, {threads} threads:")
                skip = not_timed_here(configs, name, size, plan.bf16_sizes, plan.lever_at)
                rows += time_steps(name, size, configs, plan.batch, timing, dict(plan.model_overrides), skip,
                                   memory_limit, say)
            if pipeline_plan is None:
                continue
            say(f"data pipeline at {format_size(size)}, {workers} worker(s)...")
            res = time_pipeline(pipeline_plan.lspet, size, plan.batch, workers, pipeline_plan.samples,
                                pipeline_plan.batches, timing.rounds, pipeline_plan.cache_dir or Path(tmp),
                                cache_size, cache_quality)
            for row in rows:
                if row["input"] == res["input"] and row["config"] == "default" and "images_per_s" in row:
                    ratios = res.setdefault("ratio_to_default_step", {})
                    ratios[row["model"]] = res["images_per_s"] / row["images_per_s"]
            say(f"  {res['images_per_s']:.1f} img/s (start-up {res['startup_s']:.1f} s)")
            pipeline.append(res)
    return rows, pipeline


def run_train_benchmark(
    plan: TrainBenchPlan | None = None,
    *,
    out: str | Path | None = DEFAULT_OUT,
    command: str | None = None,
    note: str = "",
    progress: Callable[[str], None] | None = print,
    **overrides: Any,
) -> dict[str, Any]:
    """Everything this benchmark does for ``plan`` (default: ``TrainBenchPlan()``) with the fields
    named in ``overrides`` replaced; returns the results and, unless ``out`` is None, writes
    ``train_speed.json`` and ``train_speed.md`` there.

    ``command``: the command line to record (default: this process's); ``note``: free text stored with the
    results; ``progress``: where progress lines go (None: nowhere). Where ``plan.pipeline`` names no LSPET
    (no joints.mat there) the pipeline is not timed and the results' note says so.
    """

    plan = replace(plan if plan is not None else TrainBenchPlan(), **overrides)
    say = progress or (lambda _msg: None)
    default = default_levers()
    configs = configurations(plan.levers, default)
    threads = int(plan.threads or usable_cores())
    pipeline_plan = plan.pipeline
    workers = usable_cores() if pipeline_plan is None or pipeline_plan.workers is None else int(pipeline_plan.workers)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    machine = describe_machine(threads)
    amp = resolve_amp(DEFAULTS["train"]["amp"], torch.device("cpu"))
    timing = plan.timing
    if timing.bf16_is_slow is None:
        timing = replace(timing, bf16_is_slow=not machine["mkldnn_bf16_supported"])
    data_note = ""
    if pipeline_plan is not None and not pipeline_plan.found():
        data_note = f"data pipeline not timed: LSPET not found at {pipeline_plan.lspet} (joints.mat missing)"
        say(data_note)
        pipeline_plan = None
    rows, pipeline = _time_all(plan, timing, configs, threads, workers,
                               plan.memory_share * (machine.get("memory_bytes") or 0), pipeline_plan, say)
    record_load_after(machine, threads)
    results: dict[str, Any] = {
        "benchmark": "train_speed",
        "command": command if command is not None else shlex.join([sys.executable, *sys.argv]),
        "models": list(plan.models),
        "sizes": [format_size(s) for s in plan.sizes],
        "batch": plan.batch,
        "steps": timing.steps,
        "rounds": timing.rounds,
        "warmup": timing.warmup,
        "bf16_steps": timing.bf16_steps,
        "bf16_rounds": timing.bf16_rounds,
        "bf16_sizes": None if plan.bf16_sizes is None else [format_size(s) for s in sorted(set(plan.bf16_sizes))],
        "bf16_is_slow": timing.bf16_is_slow,
        "lever_at": None if plan.lever_at is None else [f"{m}@{format_size(s)}" for m, s in sorted(set(plan.lever_at))],
        "compile_timeout_s": timing.compile_timeout,
        "threads": threads,
        "workers": workers,
        "model_overrides": dict(plan.model_overrides),
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
    results["goals"] = judge_goals(rows, pipeline, plan.step_goals, plan.pipeline_goal)
    if out is not None:
        results["files"] = write_report(out, "train_speed", "Training speed (CPU)", results, markdown(results))
    text = goal_text(results["goals"])
    if text:
        say(text)
    return results


def parse_model_size(text: str) -> tuple[str, tuple[int, int]]:
    model, sep, size = text.partition("@")
    if not sep or not model:
        raise argparse.ArgumentTypeError(f"expected MODEL@HxW such as transpose_r_a4@128x96, got {text!r}")
    return model, parse_size(size)


def parse_step_goal(text: str) -> Goal:
    """``MODEL@HxW:NEED`` -> a step goal (the size written as ``format_size`` writes it)."""
    return parse_goal(text, at=lambda size: format_size(parse_size(size)))


def build_parser() -> argparse.ArgumentParser:
    d, pipe = TrainBenchPlan(), PipelinePlan()
    t = d.timing
    p = argparse.ArgumentParser(description="TransPose CPU training speed: reference vs default vs each lever")
    p.add_argument("--models", nargs="+", default=list(d.models), help="registry names (default: %(default)s)")
    p.add_argument("--sizes", nargs="+", type=parse_size, default=list(d.sizes), metavar="HxW",
                   help=f"input sizes (default: {' '.join(format_size(s) for s in d.sizes)})")
    p.add_argument("--batch", type=int, default=d.batch, help="batch size (default %(default)s)")
    p.add_argument("--steps", type=int, default=t.steps,
                   help="timed steps per configuration per round (default %(default)s)")
    p.add_argument("--rounds", type=int, default=t.rounds, help="interleaved rounds (default %(default)s)")
    p.add_argument("--levers", nargs="*", default=list(d.levers),
                   help="configurations besides reference and default: levers joined with + out of "
                        f"{', '.join(LEVERS)}, 'reference' or 'default' (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: usable cores)")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="folder for train_speed.json and train_speed.md (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=t.warmup, help="untimed steps per configuration (default %(default)s)")
    p.add_argument("--bf16-steps", type=int, default=t.bf16_steps,
                   help="steps per round of bf16 configurations (default %(default)s)")
    p.add_argument("--bf16-rounds", type=int, default=t.bf16_rounds,
                   help="rounds bf16 configurations take part in (default %(default)s)")
    p.add_argument("--bf16-sizes", nargs="+", type=parse_size, default=None, metavar="HxW",
                   help="sizes at which to time bf16 configurations (default: all of --sizes)")
    p.add_argument("--lever-at", nargs="+", type=parse_model_size, default=None, metavar="MODEL@HxW",
                   help="time the --levers configurations only at these model/size pairs (default: everywhere)")
    p.add_argument("--compile-timeout", type=float, default=t.compile_timeout,
                   help="seconds for the first compiled step (default %(default)s)")
    p.add_argument("--no-data", action="store_true", help="skip the data pipeline")
    p.add_argument("--lspet", type=Path, default=pipe.lspet,
                   help="LSPET root (joints.mat, images/), relative to the working directory (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: usable cores)")
    p.add_argument("--data-samples", type=int, default=pipe.samples,
                   help="LSPET images in the pipeline's data set (default %(default)s)")
    p.add_argument("--data-batches", type=int, default=pipe.batches,
                   help="batches per pipeline round (default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None, help="crop cache folder (default: a temporary one)")
    add_goal_options(p, parse_step_goal, "MODEL@HxW:NEED", "judge the default step against the reference step "
                     "for MODEL at HxW: at least NEED x", d.step_goals, also=" and --pipeline-goal")
    p.add_argument("--pipeline-goal", type=float, default=d.pipeline_goal, metavar="NEED",
                   help="judge the data pipeline's images/s against each default step's: at least NEED x "
                        "(default %(default)s)")
    p.add_argument("--note", default="", help="text stored with the results, e.g. about other jobs running")
    return p


def plan_from_args(args: argparse.Namespace) -> TrainBenchPlan:
    """The plan the command line asks for (``build_parser``'s options)."""
    timing = StepPlan(args.steps, args.rounds, args.warmup, args.bf16_steps, args.bf16_rounds, args.compile_timeout)
    pipeline = None if args.no_data else PipelinePlan(args.lspet, args.workers, args.data_samples, args.data_batches,
                                                      args.cache_dir)
    return TrainBenchPlan(
        models=args.models, sizes=args.sizes, batch=args.batch, levers=args.levers, timing=timing,
        bf16_sizes=args.bf16_sizes, lever_at=args.lever_at, threads=args.threads, pipeline=pipeline,
        step_goals=goals_asked(args, TrainBenchPlan().step_goals),
        pipeline_goal=None if args.no_goals else args.pipeline_goal,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    results = run_train_benchmark(plan_from_args(args), out=args.out, note=args.note,
                                  command=shlex.join(["python", "benchmarks/bench_train.py", *argv]))
    for f in results.get("files", []):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
