"""Inference speed and memory of the TransPose variants along three paths, against the machine's matmul peak.

Paths (all fp32, random inputs, the variants' random initial weights; speed does not depend on them):
- ``reference``: the released models' formulation. The same model, eager, NCHW, under ``torch.no_grad``,
  called with ``return_attention=True``: every layer computes ``softmax(Q K^T / sqrt(e)) V`` explicitly,
  materialising the [B, heads, L, L] matrix, and keeps its head-averaged map, as the released code's
  ``nn.MultiheadAttention`` (``need_weights=True`` by default) does.
- ``torch``: our default path: ``model(x)`` under ``torch.inference_mode`` (fused
  ``scaled_dot_product_attention``, no [L, L] matrix kept), NCHW.
- ``torch_cl``: the same with model and input in ``channels_last`` memory format.
- ``torch_compile`` (only when asked for): ``torch.compile`` of our path (Inductor), compiled in the warm-up call.
- ``onnxruntime``: the graph from ``tpose.export.export_onnx`` (TorchScript exporter, opset 17) in ONNX
  Runtime with all graph optimisations and intra-op threads = ``--threads``.

Each (model, batch) times its paths interleaved round-robin, medians over ``--repeats`` after one
warm-up call each. Achieved GFLOP/s = 2 x multiply-adds (``tpose.models.complexity.count_macs``,
convolutions and matrix products, attention included) x batch / median time; the fp32 matmul peak is
measured here with a large ``torch.matmul`` at the same thread count. Peak memory is the peak RSS of a
fresh process per (model, path) that builds the model and runs each batch size in turn, smallest first
(the high-water mark only rises, so each reading is that batch's peak); it includes the interpreter and
torch (~0.3 GB).

The report judges the goals it is given: ``--goal MODEL@PATH:NEED`` (PATH at least NEED x as fast as the
reference for MODEL at batch ``--goal-batch``; default: the four of ``DEFAULT_GOALS`` at batch 8, the
project's goals on its 2-core CPU); ``--no-goals`` judges none.

Run from the repository root, e.g.
``python benchmarks/bench_inference.py --models transpose_r_a4 transpose_h_a4 --batch 1 8 --repeats 5``.
CUDA (``--device cuda``) is written but untested here: torch paths synchronise before each clock read;
ONNX Runtime uses its CUDA provider with host-side inputs and outputs (transfers included).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    current_rss_bytes,
    fmt,
    machine_info,
    markdown_table,
    matmul_peak_gflops,
    peak_rss_bytes,
    run_in_child,
    usable_cores,
)
from goals import Goal, add_goal_options, goal_lines, goals_asked, goals_section, judged, measured, parse_goal
from report import load_average_text, measured_on, record_load_after, write_report

from tpose.bench.timing import interleaved, summarize
from tpose.export import INPUT_NAME, create_session, export_onnx
from tpose.models import build_model, list_variants
from tpose.models.complexity import count_macs
from tpose.utils.sizes import parse_size

PATHS = ("reference", "torch", "torch_cl", "onnxruntime")
# measured on request only: compiling takes 30-75 s per model and batch on the 2-core CPU
EXTRA_PATHS = ("torch_compile",)
DEFAULT_OUT = Path("benchmarks") / "results"  # relative to the working directory: run from the repository root
# the goals judged unless others are given: the minimum speed-up over the reference per (model, path) at
# batch 8, set for the project's 2-core CPU
DEFAULT_GOALS = (
    Goal("transpose_h_a4", "torch", 1.3),
    Goal("transpose_r_a4", "torch", 1.0),
    Goal("transpose_h_a4", "onnxruntime", 1.5),
    Goal("transpose_r_a4", "onnxruntime", 1.5),
)
DEFAULT_GOAL_BATCH = 8
# the reference keeps every layer's [B, L, L] map: skip it where that would take more than this share of RAM
REFERENCE_MEMORY_SHARE = 0.4


def _build(name: str, input_size: tuple[int, int], device: str) -> torch.nn.Module:
    return build_model(name, input_size=tuple(input_size)).eval().to(device)


def _reference_bytes(config: Any, input_size: tuple[int, int], stride: int, batch: int) -> int:
    """What the reference holds at its peak: every layer's kept map plus one layer's logits and softmax."""
    tokens = (input_size[0] // stride) * (input_size[1] // stride)
    per_map = batch * tokens * tokens * 4
    return config.num_layers * per_map + 2 * config.num_heads * per_map


def _runner(
    path: str,
    model: torch.nn.Module,
    x: torch.Tensor,
    onnx_file: Path | None,
    threads: int,
    device: str,
) -> Callable[[], Any]:
    """A no-argument call that runs one forward of ``x`` along ``path``."""
    if path == "reference":
        def reference() -> Any:
            with torch.no_grad():
                return model(x, return_attention=True)

        return reference
    if path == "torch":
        def ours() -> Any:
            with torch.inference_mode():
                return model(x)

        return ours
    if path == "torch_cl":
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)

        def ours_cl() -> Any:
            with torch.inference_mode():
                return model_cl(x_cl)

        return ours_cl
    if path == "torch_compile":
        compiled = torch.compile(copy.deepcopy(model))  # compiles on the first (warm-up) call

        def ours_compiled() -> Any:
            with torch.inference_mode():
                return compiled(x)

        return ours_compiled
    if path == "onnxruntime":
        if onnx_file is None:
            raise ValueError("the onnxruntime path needs an exported file")
        session = create_session(onnx_file, threads=threads, optimization="all", device=device)
        feed = {INPUT_NAME: np.ascontiguousarray(x.detach().cpu().numpy())}

        def ort_run() -> Any:
            return session.run(None, feed)

        return ort_run
    raise ValueError(f"unknown path {path!r}; known: {PATHS + EXTRA_PATHS}")


def _memory_probe(
    name: str, path: str, batches: Sequence[int], input_size: tuple[int, int], threads: int,
    onnx_file: str | None, device: str,
) -> dict[str, Any]:
    """In a fresh process: RSS after building, and the peak RSS after the forward of each batch in turn."""
    torch.set_num_threads(threads)
    model = _build(name, input_size, device if path != "onnxruntime" else "cpu")
    out: dict[str, Any] = {"rss_after_build_bytes": current_rss_bytes(), "peak_rss_bytes": {}}
    for batch in batches:
        x = torch.randn(batch, 3, *input_size, device=device if path != "onnxruntime" else "cpu")
        run = _runner(path, model, x, None if onnx_file is None else Path(onnx_file), threads, device)
        run()
        del run
        out["peak_rss_bytes"][str(batch)] = peak_rss_bytes()
        if device.startswith("cuda"):
            out.setdefault("cuda_max_allocated_bytes", {})[str(batch)] = torch.cuda.max_memory_allocated()
    return out


def _export(model: torch.nn.Module, input_size: tuple[int, int], folder: Path, name: str) -> Path:
    return export_onnx(model, folder / f"{name}_{input_size[0]}x{input_size[1]}.onnx", input_size=input_size)



@dataclass(frozen=True)
class InferenceBench:
    """What the inference benchmark measures: models, batches, input size, paths, repeats, goals; where it writes."""

    models: Sequence[str] | None = None
    batch: Sequence[int] = (1, 8)
    input_size: tuple[int, int] = (256, 192)
    repeats: int = 5
    threads: int | None = None
    out: str | Path | None = DEFAULT_OUT
    paths: Sequence[str] = PATHS
    memory: bool = True
    device: str = "cpu"
    note: str = ""
    matmul_size: int = 2048
    goals: Sequence[Goal] = DEFAULT_GOALS
    goal_batch: int = DEFAULT_GOAL_BATCH


def run_benchmark(options: InferenceBench, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """The comparison of paths for each model and batch; returns the results and, unless ``out`` is None, writes
    ``inference-HxW.json`` and ``inference-HxW.md`` into ``out``.

    ``models``: registry names (default: all); ``batch``: batch sizes; ``input_size``: (H, W);
    ``threads``: torch and ONNX Runtime intra-op threads (default: usable cores); ``paths``: a subset
    of ``PATHS``; ``memory``: also measure peak RSS per (model, path) in a child process; ``note``:
    free text stored with the results (e.g. "another job was running"); ``matmul_size``: n of the
    n x n x n product that measures the fp32 peak; ``goals``: the speed-ups over the reference the report
    judges, per (model, path), at batch ``goal_batch`` (``Goal(model, path, need)``; () judges none).
    """
    (models, batch, input_size, repeats, threads, out, paths, memory, device, note, matmul_size, goals, goal_batch) = (
        options.models, options.batch, options.input_size, options.repeats, options.threads, options.out,
        options.paths, options.memory, options.device, options.note, options.matmul_size, options.goals,
        options.goal_batch)

    say = progress or (lambda _msg: None)
    names = list(models) if models else list_variants()
    unknown = [n for n in names if n not in list_variants()]
    if unknown:
        raise ValueError(f"unknown models {unknown}; available: {', '.join(list_variants())}")
    bad = [p for p in paths if p not in PATHS + EXTRA_PATHS]
    if bad:
        raise ValueError(f"unknown paths {bad}; known: {', '.join(PATHS + EXTRA_PATHS)}")
    batches = sorted({int(b) for b in batch})
    if not batches or batches[0] < 1:
        raise ValueError(f"batch sizes must be positive, got {list(batch)}")
    input_size = (int(input_size[0]), int(input_size[1]))
    threads = int(threads or usable_cores())
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    started = time.perf_counter()
    machine = machine_info(threads)
    say(f"measuring the fp32 matmul peak ({threads} threads)...")
    peak_before = matmul_peak_gflops(n=matmul_size, threads=threads, device=device)
    total_ram = machine.get("memory_bytes") or 0
    rows: list[dict[str, Any]] = []
    memory_rows: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tpose-bench-") as tmp:
        for name in names:
            model = _build(name, input_size, device)
            params = sum(p.numel() for p in model.parameters())
            macs = count_macs(model.config, input_size)["total"]
            onnx_file = None
            if "onnxruntime" in paths:
                t0 = time.perf_counter()
                onnx_file = _export(model if device == "cpu" else _build(name, input_size, "cpu"),
                                    input_size, Path(tmp), name)
                say(f"{name}: exported to ONNX in {time.perf_counter() - t0:.1f} s")
            for b in batches:
                x = torch.randn(b, 3, *input_size, device=device)
                skipped: dict[str, str] = {}
                fns: dict[str, Callable[[], Any]] = {}
                for p in paths:
                    if p == "reference" and total_ram:
                        need = _reference_bytes(model.config, input_size, model.backbone_stride, b)
                        if need > REFERENCE_MEMORY_SHARE * total_ram:
                            skipped[p] = f"its attention maps need ~{need / 2**30:.1f} GiB"
                            continue
                    fns[p] = _runner(p, model, x, onnx_file, threads, device)
                say(f"{name} batch {b}: timing {', '.join(fns)} x {repeats} (interleaved)...")
                times = interleaved(fns, repeats=repeats, warmup=1, sync=sync)
                del fns
                ref_med = summarize(times["reference"])["median_s"] if "reference" in times else None
                for p in paths:
                    row: dict[str, Any] = {
                        "model": name, "batch": b, "path": p, "parameters": params, "macs_per_image": macs,
                    }
                    if p in skipped:
                        row["skipped"] = skipped[p]
                        rows.append(row)
                        continue
                    s = summarize(times[p])
                    med = s["median_s"]
                    row.update(s)
                    row["times_s"] = times[p]
                    row["ms_per_image"] = 1000 * med / b
                    row["images_per_s"] = b / med
                    row["gflops"] = 2 * macs * b / med / 1e9
                    row["speedup_vs_reference"] = None if ref_med is None else ref_med / med
                    rows.append(row)
                    say(f"  {p:12s} {1000 * med:9.1f} ms/batch  {b / med:7.2f} img/s  "
                        f"{row['gflops']:6.1f} GFLOP/s" + ("" if ref_med is None else f"  x{ref_med / med:.2f}"))
            if memory:
                for p in paths:
                    mem_batches = [b for b in batches if not (
                        p == "reference" and total_ram
                        and _reference_bytes(model.config, input_size, model.backbone_stride, b)
                        > REFERENCE_MEMORY_SHARE * total_ram)]
                    if not mem_batches:
                        continue
                    say(f"{name}: peak RSS of {p} in a child process...")
                    res = run_in_child(
                        _memory_probe, name, p, mem_batches, input_size, threads,
                        None if onnx_file is None else str(onnx_file), device,
                    )
                    memory_rows[(name, p)] = res
            del model
    peak_after = matmul_peak_gflops(n=matmul_size, threads=threads, device=device)
    peak = max(peak_before, peak_after)
    for row in rows:
        res = memory_rows.get((row["model"], row["path"]))
        if res and res.get("result"):
            row["peak_rss_bytes"] = res["result"]["peak_rss_bytes"].get(str(row["batch"]))
            row["rss_after_build_bytes"] = res["result"]["rss_after_build_bytes"]
        elif res and res.get("error"):
            row["memory_error"] = res["error"]
        if "gflops" in row:
            row["percent_of_matmul_peak"] = 100 * row["gflops"] / peak
    record_load_after(machine, threads)
    results: dict[str, Any] = {
        "benchmark": "inference",
        "input_size": list(input_size),
        "batches": batches,
        "repeats": repeats,
        "threads": threads,
        "device": device,
        "paths": list(paths),
        "matmul_peak_gflops": {"before": peak_before, "after": peak_after, "used": peak, "n": matmul_size},
        "machine": machine,
        "note": note,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "goal_batch": int(goal_batch),
        "goals": judge_goals(rows, goals, goal_batch),
    }
    if out is not None:
        results["files"] = write_report(out, f"inference-{input_size[0]}x{input_size[1]}", "Inference benchmark",
                                        results, _markdown(results))
    text = goal_text(results["goals"])
    if text:
        say(text)
    return results


def judge_goals(rows: Sequence[Mapping[str, Any]], goals: Sequence[Goal], batch: int) -> list[dict[str, Any]]:
    """Each goal's record: the speed-up over the reference of its (model, path) at ``batch`` (None: not timed)."""
    found = []
    for goal in goals:
        where = {"model": goal.model, "path": goal.at, "batch": batch}
        found.append(judged(where, goal.need, measured(rows, where)))
    return found


def _describe(goal: Mapping[str, Any]) -> str:
    return f"goal {goal['path']} >= {goal['need']}x reference for {goal['model']} at batch {goal['batch']}"


def goal_text(goals: Sequence[Mapping[str, Any]]) -> str:
    """One line per measured goal: what it asks, what was measured, met or MISSED."""
    return "\n".join(goal_lines(goals, _describe))


def _mib(n: int | None) -> str:
    return fmt(None if n is None else n / 2**20, 0)


def _markdown(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    peak = results["matmul_peak_gflops"]
    h, w = results["input_size"]
    head = [
        measured_on(m, f"{results['threads']} threads")
        + f", torch {m['torch']}, onnxruntime {m['onnxruntime']}; input {h}x{w}, fp32, {results['repeats']} "
        f"interleaved repeats (median), one warm-up call each. {load_average_text(m)}",
        f"fp32 matmul peak ({peak['n']}^3 torch.matmul, best of 5): {peak['before']:.1f} GFLOP/s before, "
        f"{peak['after']:.1f} after; % of peak below uses {peak['used']:.1f}.",
    ]
    if results.get("note"):
        head.append(f"**Note:** {results['note']}")
    headers = ["model", "batch", "params (M)", "GMACs/img", "path", "ms/batch", "ms/img", "img/s", "GFLOP/s",
               "% peak", "x ref", "peak RSS (MiB)"]
    table = []
    for r in results["rows"]:
        if "skipped" in r:
            table.append([r["model"], r["batch"], round(r["parameters"] / 1e6, 2), round(r["macs_per_image"] / 1e9, 2),
                          r["path"], "skipped: " + r["skipped"], "", "", "", "", "", ""])
            continue
        table.append([
            r["model"], r["batch"], round(r["parameters"] / 1e6, 2), round(r["macs_per_image"] / 1e9, 2), r["path"],
            fmt(1000 * r["median_s"]), fmt(r["ms_per_image"]), fmt(r["images_per_s"], 2), fmt(r["gflops"]),
            fmt(r.get("percent_of_matmul_peak"), 0),
            "" if r.get("speedup_vs_reference") is None else f"{r['speedup_vs_reference']:.2f}",
            _mib(r.get("peak_rss_bytes")),
        ])
    paths_doc = (
        "Paths: **reference** = the released formulation (explicit softmax(QK^T)V with the [L, L] matrix and the "
        "head-averaged maps kept, eager, NCHW, torch.no_grad: the same model called with return_attention=True); "
        "**torch** = our default model(x) under torch.inference_mode (fused SDPA); **torch_cl** = the same in "
        "channels_last; **torch_compile** (if measured) = torch.compile of it; **onnxruntime** = the exported "
        "graph (TorchScript exporter, opset 17), all graph "
        "optimisations, intra-op threads = threads. Peak RSS: a fresh process per (model, path) running each batch "
        "size in turn, smallest first (so each reading is that batch's peak), interpreter and torch included."
    )
    sections = ["\n\n".join(head), markdown_table(headers, table), paths_doc]
    batch = results.get("goal_batch", DEFAULT_GOAL_BATCH)
    sections.append(goals_section(f"Goals (batch {batch}):", goal_lines(results["goals"], _describe)))
    return sections


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="TransPose inference benchmark: reference vs ours vs ONNX Runtime")
    p.add_argument("--models", nargs="+", default=None, help="registry names (default: all variants)")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--input-size", type=parse_size, default=(256, 192), help="HxW (default 256x192)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per path (default 5)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: usable cores)")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="folder for the JSON and Markdown results (default: %(default)s)")
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS + EXTRA_PATHS,
                   help=f"which paths to time (default: {' '.join(PATHS)}; also: {' '.join(EXTRA_PATHS)})")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    p.add_argument("--device", default="cpu", help="cpu (tested) or cuda (untested)")
    p.add_argument("--note", default="", help="text stored with the results, e.g. about other jobs running")
    p.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 matmul measuring the fp32 peak")
    add_goal_options(p, parse_path_goal, "MODEL@PATH:NEED",
                     "judge PATH against the reference for MODEL at --goal-batch: at least NEED x", DEFAULT_GOALS)
    p.add_argument("--goal-batch", type=int, default=DEFAULT_GOAL_BATCH,
                   help="the batch size at which goals are judged (default %(default)s)")
    return p


def _known_path(path: str) -> str:
    if path not in PATHS + EXTRA_PATHS:
        raise ValueError(f"unknown path {path!r}; known: {', '.join(PATHS + EXTRA_PATHS)}")
    return path


def parse_path_goal(text: str) -> Goal:
    """``MODEL@PATH:NEED`` -> a goal for one of the benchmark's paths."""
    return parse_goal(text, at=_known_path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = run_benchmark(InferenceBench(
        models=args.models, batch=args.batch, input_size=args.input_size, repeats=args.repeats,
        threads=args.threads, out=args.out, paths=args.paths, memory=not args.no_memory,
        device=args.device, note=args.note, matmul_size=args.matmul_size,
        goals=goals_asked(args, DEFAULT_GOALS), goal_batch=args.goal_batch,
    ))
    for f in results.get("files", []):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
