"""int8 vs fp32 inference speed on the CPU, against the int8 and fp32 matmul peaks measured in the same run.

Paths per (model, batch), timed interleaved round-robin (``common.interleaved``), medians over
``repeats`` after one warm-up call each:
- ``ort_int8``: the graph quantized by ``tpose.export.quantize`` (default recipe: QDQ, per-channel,
  u8 x s8, MinMax, Softmax float), ONNX Runtime, all graph optimisations (DQ -> op -> Q fused into int8 kernels);
- ``ort_fp32``: the fp32 export (TorchScript exporter, opset 17), the same session options;
- ``torch``: ``model(x)`` under ``torch.inference_mode``, fp32 NCHW; ``torch_cl``: the same in channels_last.

Peaks: int8 = one ONNX Runtime ``MatMulInteger`` (u8 [n, n] x s8 [n, n] constant, int32 out) and fp32 =
one ONNX Runtime ``MatMul`` and one ``torch.matmul`` (n x n x n), the best of 5 each, before and after the
models. Achieved rates count 2 x multiply-adds (``tpose.models.complexity.count_macs``) x batch / time, the
same work for every path; "% int8 peak" and "% fp32 peak" divide it by the peaks.

Models: the shipped LSPET weights at their own 128x96 and, for speed only, registry variants with their
random initial weights (speed does not depend on them), each calibrated on a few dozen real LSPET
*training* crops. Run from the repository root, e.g.
``python benchmarks/bench_int8.py --prepare-only`` (export + quantize into ``--work-dir``) then
``/work/pause-training python benchmarks/bench_int8.py`` (timing only, reusing the prepared files).
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    fmt,
    machine_info,
    markdown_table,
    matmul_peak_gflops,
    usable_cores,
    write_json,
    write_markdown,
)

from tpose.bench.timing import interleaved, summarize
from tpose.export import INPUT_NAME, create_session, export_onnx
from tpose.export.int8 import QuantSettings, calibration_crops, preprocess, quantize_onnx, write_metadata
from tpose.models import build_model
from tpose.models.checkpoint import load_model
from tpose.models.complexity import count_macs
from tpose.utils.machine import cpu_features
from tpose.utils.ort import session_options
from tpose.utils.sizes import parse_size

PATHS = ("ort_int8", "ort_fp32", "torch", "torch_cl")
DEFAULT_OUT = Path("benchmarks") / "results"
DEFAULT_WORK = Path("cache") / "int8-bench"  # exported and quantized graphs, reused between runs (git-ignored)
SHIPPED = "src/tpose/weights/transpose_r_a4_lsp_mpii_128x96.safetensors"
GOAL_BATCH = 8
GOAL_RATIO = 1.8  # int8 / fp32 ONNX Runtime images per second at batch 8


@dataclass(frozen=True)
class BenchModel:
    """One model to time: a label, a registry name or weights file, and the input size."""

    label: str
    source: str
    input_size: tuple[int, int]
    weights: bool = False  # True: ``source`` is a weights file (accuracy-bearing); False: random init

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "source": self.source, "input_size": list(self.input_size),
                "weights": "trained" if self.weights else "random initial (speed only)"}


DEFAULT_MODELS = (
    BenchModel("r_a4 shipped", SHIPPED, (128, 96), True),
    BenchModel("transpose_r_a4", "transpose_r_a4", (256, 192)),
    BenchModel("transpose_h_a4", "transpose_h_a4", (256, 192)),
)


def parse_model(text: str) -> BenchModel:
    """``NAME@HxW`` (registry name, random weights) or ``FILE.safetensors`` (its own size) or ``FILE@HxW``."""

    source, _, size = text.partition("@")
    is_file = source.endswith((".safetensors", ".pt", ".pth"))
    if size:
        hw = tuple(parse_size(size))
    elif is_file:
        hw = tuple(_build(source, None).config.input_size)
    else:
        hw = (256, 192)
    label = (Path(source).stem if is_file else source) + ("" if not size else f"@{hw[0]}x{hw[1]}")
    return BenchModel(label, source, (int(hw[0]), int(hw[1])), is_file)


def _build(source: str, input_size: Sequence[int] | None) -> torch.nn.Module:
    if source.endswith((".safetensors", ".pt", ".pth")):

        model = load_model(source)
    else:

        torch.manual_seed(0)
        model = build_model(source, **({} if input_size is None else {"input_size": tuple(input_size)}))
    return model.eval()


# ------------------------------------------------------------------------------------------------ peaks


def _ort_session(proto: Any, threads: int) -> Any:
    import onnxruntime as ort


    return ort.InferenceSession(proto.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])


def _best_of(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm-up: thread pool, pre-packed weights
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def ort_matmul_peak(n: int = 2048, threads: int | None = None, repeats: int = 5, dtype: str = "int8") -> float:
    """Giga-operations/s (2 per multiply-add) of one ONNX Runtime matrix product [n, n] x [n, n] constant.

    ``dtype="int8"``: ``MatMulInteger`` u8 activations x s8 weights -> int32, ONNX Runtime's own integer
    GEMM (the kernel its quantized Conv and MatMul run on; VNNI where the CPU has it). ``"fp32"``: ``MatMul``.
    The weight is an initializer, so it is pre-packed as a model's weights are.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    threads = int(threads or usable_cores())
    if dtype == "int8":
        a = rng.integers(0, 256, size=(n, n), dtype=np.uint8)
        b = rng.integers(-127, 128, size=(n, n), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        in_type, out_type = TensorProto.UINT8, TensorProto.INT32
    elif dtype == "fp32":
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        in_type = out_type = TensorProto.FLOAT
    else:
        raise ValueError(f"dtype must be 'int8' or 'fp32', got {dtype!r}")
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("A", in_type, [n, n])],
                              [helper.make_tensor_value_info("Y", out_type, [n, n])],
                              initializer=[numpy_helper.from_array(b, "B")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    session = _ort_session(proto, threads)
    feed = {"A": a}
    seconds = _best_of(lambda: session.run(None, feed), repeats)
    return 2.0 * n**3 / seconds / 1e9


def measure_peaks(n: int = 2048, threads: int | None = None) -> dict[str, float]:
    """int8 (ORT MatMulInteger), fp32 ORT MatMul and fp32 torch.matmul rates, in G(FL)OP/s."""
    threads = int(threads or usable_cores())
    return {
        "int8_ort_matmulinteger": ort_matmul_peak(n, threads, dtype="int8"),
        "fp32_ort_matmul": ort_matmul_peak(n, threads, dtype="fp32"),
        "fp32_torch_matmul": matmul_peak_gflops(n=n, threads=threads),
    }


# ------------------------------------------------------------------------------------------ preparation


def _calibration_crops(size: tuple[int, int], count: int, lspet_root: Path | None) -> np.ndarray:
    """``count`` real LSPET training crops (images 1-9000); seeded random images when LSPET is absent."""

    if lspet_root is not None and (lspet_root / "joints.mat").is_file():
        spec = {"type": "lspet", "root": str(lspet_root), "first": 1, "last": 9000}
        return calibration_crops(spec, size, count).images
    rng = np.random.default_rng(0)
    return rng.standard_normal((count, 3, *size)).astype(np.float32)


def prepare(
    spec: BenchModel, work_dir: Path, calibration_count: int = 48, lspet_root: Path | None = None,
    settings: Any = None, progress: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """The fp32 export and the int8 graph of ``spec`` in ``work_dir`` (reused when already there for the same
    recipe): so the timing run under ``/work/pause-training`` does only timing."""

    settings = settings or QuantSettings()
    stem = f"{spec.label.replace(' ', '_').replace('@', '_')}_{spec.input_size[0]}x{spec.input_size[1]}"
    fp32 = work_dir / f"{stem}.onnx"
    int8 = work_dir / f"{stem}_int8.onnx"
    recipe = work_dir / f"{stem}_int8.json"
    want = {"settings": settings.to_dict(), "calibration_count": calibration_count, "source": spec.source}
    if fp32.is_file() and int8.is_file() and recipe.is_file() and json.loads(recipe.read_text()) == want:
        return fp32, int8
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    export_onnx(_build(spec.source, spec.input_size), fp32, input_size=spec.input_size)
    pre = work_dir / f"{stem}_pre.onnx"
    preprocess(fp32, pre)
    crops = _calibration_crops(spec.input_size, calibration_count, lspet_root)
    quantize_onnx(pre, int8, crops, settings, batch_size=8)
    write_metadata(fp32, int8, {"label": settings.label(), "settings": settings.to_dict(),
                                "calibration": f"{len(crops)} LSPET training crops (images 1-9000)",
                                "purpose": "speed benchmark"})
    pre.unlink()
    recipe.write_text(json.dumps(want))
    progress(f"{spec.label}: exported and quantized in {time.perf_counter() - t0:.0f} s")
    return fp32, int8


# --------------------------------------------------------------------------------------------- timing


def _runners(
    model: torch.nn.Module, x: torch.Tensor, fp32: Path, int8: Path, threads: int, paths: Sequence[str]
) -> dict[str, Callable[[], Any]]:

    feed = {INPUT_NAME: np.ascontiguousarray(x.numpy())}
    fns: dict[str, Callable[[], Any]] = {}
    for p in paths:
        if p in ("ort_int8", "ort_fp32"):
            session = create_session(int8 if p == "ort_int8" else fp32, threads=threads, optimization="all")
            fns[p] = (lambda sess: lambda: sess.run(None, feed))(session)
        elif p == "torch":
            def ours(m: torch.nn.Module = model) -> Any:
                with torch.inference_mode():
                    return m(x)

            fns[p] = ours
        elif p == "torch_cl":
            model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
            x_cl = x.contiguous(memory_format=torch.channels_last)

            def ours_cl(m: torch.nn.Module = model_cl, xc: torch.Tensor = x_cl) -> Any:
                with torch.inference_mode():
                    return m(xc)

            fns[p] = ours_cl
        else:
            raise ValueError(f"unknown path {p!r}; known: {PATHS}")
    return fns



@dataclass(frozen=True)
class Int8Bench:
    """What the int8 benchmark measures (models, batches, paths, calibration) and where it works and writes."""

    models: Sequence[BenchModel] = DEFAULT_MODELS
    batch: Sequence[int] = (1, 8)
    repeats: int = 5
    threads: int | None = None
    out: str | Path | None = DEFAULT_OUT
    work_dir: str | Path = DEFAULT_WORK
    paths: Sequence[str] = PATHS
    calibration_count: int = 48
    lspet_root: str | Path | None = "../shared/data/lspet"
    matmul_size: int = 2048
    prepare_only: bool = False
    accuracy: dict[str, Any] | None = None
    note: str = ""
    command: str | None = None


def run_benchmark(options: Int8Bench, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Time every path of every model and batch; returns the results and (unless ``out`` is None) writes
    ``int8.json`` and ``int8.md`` there. ``accuracy``: a measured accuracy table to print with the speed."""
    (models, batch, repeats, threads, out, work_dir, paths, calibration_count, lspet_root, matmul_size, prepare_only,
     accuracy, note, command) = (
        options.models, options.batch, options.repeats, options.threads, options.out, options.work_dir, options.paths,
        options.calibration_count, options.lspet_root, options.matmul_size, options.prepare_only, options.accuracy,
        options.note, options.command)
    say = progress or (lambda _msg: None)
    bad = [p for p in paths if p not in PATHS]
    if bad:
        raise ValueError(f"unknown paths {bad}; known: {', '.join(PATHS)}")
    batches = sorted({int(b) for b in batch})
    if not batches or batches[0] < 1:
        raise ValueError(f"batch sizes must be positive, got {list(batch)}")
    threads = int(threads or usable_cores())
    torch.set_num_threads(threads)
    work = Path(work_dir)
    root = None if lspet_root is None else Path(lspet_root)
    files = {m.label: prepare(m, work, calibration_count, root, progress=say) for m in models}
    if prepare_only:
        return {"prepared": {k: [str(a), str(b)] for k, (a, b) in files.items()}}

    started = time.perf_counter()
    machine = machine_info(threads)
    machine["cpu_flags"] = cpu_features()
    say(f"measuring the int8 and fp32 matmul peaks ({threads} threads)...")
    before = measure_peaks(matmul_size, threads)
    rows: list[dict[str, Any]] = []
    for spec in models:
        fp32, int8 = files[spec.label]
        model = _build(spec.source, spec.input_size)
        macs = count_macs(model.config, spec.input_size)["total"]
        for b in batches:
            x = torch.randn(b, 3, *spec.input_size)
            fns = _runners(model, x, fp32, int8, threads, paths)
            say(f"{spec.label} batch {b}: timing {', '.join(fns)} x {repeats} (interleaved)...")
            times = interleaved(fns, repeats=repeats, warmup=1)
            del fns
            for p in paths:
                s = summarize(times[p])
                row = {"model": spec.label, "source": spec.source, "input_size": list(spec.input_size), "batch": b,
                       "path": p, "macs_per_image": macs, **s, "times_s": times[p],
                       "images_per_s": b / s["median_s"], "gops": 2 * macs * b / s["median_s"] / 1e9}
                rows.append(row)
                say(f"  {p:9s} {1000 * s['median_s']:9.1f} ms/batch {row['images_per_s']:8.2f} img/s "
                    f"{row['gops']:7.1f} GOP/s")
        del model
    after = measure_peaks(matmul_size, threads)
    peaks = {k: max(before[k], after[k]) for k in before}
    fp32_peak = max(peaks["fp32_ort_matmul"], peaks["fp32_torch_matmul"])
    for row in rows:
        ref = next(r for r in rows if r["model"] == row["model"] and r["batch"] == row["batch"]
                   and r["path"] == ("ort_fp32" if "ort_fp32" in paths else row["path"]))
        row["ratio_vs_ort_fp32"] = row["images_per_s"] / ref["images_per_s"] if "ort_fp32" in paths else None
        # best-of-repeats ratio too: on a shared machine the fastest call is the least disturbed one
        row["ratio_vs_ort_fp32_min"] = ref["min_s"] / row["min_s"] if "ort_fp32" in paths else None
        row["percent_int8_peak"] = 100 * row["gops"] / peaks["int8_ort_matmulinteger"]
        row["percent_fp32_peak"] = 100 * row["gops"] / fp32_peak
    machine["load_average_after"] = machine_info(threads).get("load_average")
    results: dict[str, Any] = {
        "benchmark": "int8",
        "command": command,
        "models": [m.to_dict() for m in models],
        "batches": batches,
        "repeats": repeats,
        "threads": threads,
        "paths": list(paths),
        "calibration_count": calibration_count,
        "peaks": {"before": before, "after": after, "used": peaks, "fp32_used": fp32_peak, "n": matmul_size},
        "machine": machine,
        "note": note,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "goals": _goals(rows),
        "accuracy": accuracy,
    }
    if out is not None:
        folder = Path(out)
        results["files"] = [str(write_json(folder / "int8.json", results)),
                            str(write_markdown(folder / "int8.md", "int8 inference benchmark", _markdown(results)))]
    say(_goal_text(results["goals"]))
    return results


def time_graphs(
    graphs: dict[str, str | Path], batch: int = 8, repeats: int = 5, threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Median seconds per call (and img/s) of ONNX files taking the same input, timed interleaved: how the
    quantization recipes (QDQ vs QOperator, per-channel vs per-tensor, u8 vs s8 ...) compare in speed."""

    threads = int(threads or usable_cores())
    sessions = {k: create_session(v, threads=threads, optimization="all") for k, v in graphs.items()}
    shape = [d if isinstance(d, int) else batch for d in next(iter(sessions.values())).get_inputs()[0].shape]
    feed = {INPUT_NAME: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    def caller(session: Any) -> Callable[[], Any]:
        return lambda: session.run(None, feed)

    times = interleaved({k: caller(v) for k, v in sessions.items()}, repeats)
    return {k: {**summarize(t), "images_per_s": batch / summarize(t)["median_s"]} for k, t in times.items()}


def _goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["path"] == "ort_int8" and r["batch"] == GOAL_BATCH and r.get("ratio_vs_ort_fp32") is not None:
            got = r["ratio_vs_ort_fp32"]
            out.append({"model": r["model"], "batch": GOAL_BATCH, "need": GOAL_RATIO, "got": got,
                        "best": r.get("ratio_vs_ort_fp32_min"), "met": got >= GOAL_RATIO})
    return out


def _goal_text(goals: list[dict[str, Any]]) -> str:
    return "\n".join(f"goal int8 >= {g['need']}x fp32 ONNX Runtime for {g['model']} at batch {g['batch']}: "
                     f"{g['got']:.2f}x median ({'met' if g['met'] else 'MISSED'})"
                     + ("" if g.get("best") is None else f", {g['best']:.2f}x best of repeats") for g in goals)


def _markdown(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    pk = results["peaks"]
    flags = ", ".join(k for k, v in (m.get("cpu_flags") or {}).items() if v) or "unknown"
    head = [
        f"Measured {m['time_utc']} UTC on {m['cpu']} ({m['usable_cores']} usable cores, {results['threads']} "
        f"threads; CPU flags: {flags}), onnxruntime {m['onnxruntime']}, torch {m['torch']}; "
        f"{results['repeats']} interleaved repeats (median), one warm-up call each. Load average before "
        f"{m.get('load_average')}, after {m.get('load_average_after')}.",
        f"Command: `{results.get('command') or 'run_benchmark(...)'}`",
        f"Peaks ({pk['n']}^3, best of 5, before / after): int8 ORT MatMulInteger u8 x s8 "
        f"{pk['before']['int8_ort_matmulinteger']:.0f} / {pk['after']['int8_ort_matmulinteger']:.0f} GOP/s; fp32 ORT "
        f"MatMul {pk['before']['fp32_ort_matmul']:.0f} / {pk['after']['fp32_ort_matmul']:.0f} GFLOP/s; fp32 "
        f"torch.matmul {pk['before']['fp32_torch_matmul']:.0f} / {pk['after']['fp32_torch_matmul']:.0f} GFLOP/s. "
        f"Shares below use the larger of each: int8 {pk['used']['int8_ort_matmulinteger']:.0f}, "
        f"fp32 {pk['fp32_used']:.0f}.",
        "Models: " + "; ".join(f"{d['label']} ({d['source']}, {d['input_size'][0]}x{d['input_size'][1]}, "
                               f"{d['weights']})" for d in results["models"])
        + f". int8 graphs calibrated on {results['calibration_count']} LSPET training crops (images 1-9000).",
    ]
    if results.get("note"):
        head.append(f"**Note:** {results['note']}")
    headers = ["model", "batch", "path", "ms/batch", "img/s", "x ort_fp32", "x ort_fp32 (best)", "GOP/s",
               "% int8 peak", "% fp32 peak"]
    table = [[r["model"], r["batch"], r["path"], fmt(1000 * r["median_s"]), fmt(r["images_per_s"], 2),
              "" if r.get("ratio_vs_ort_fp32") is None else f"{r['ratio_vs_ort_fp32']:.2f}",
              "" if r.get("ratio_vs_ort_fp32_min") is None else f"{r['ratio_vs_ort_fp32_min']:.2f}", fmt(r["gops"]),
              fmt(r["percent_int8_peak"], 1), fmt(r["percent_fp32_peak"], 1)] for r in results["rows"]]
    sections = ["\n\n".join(head), markdown_table(headers, table)]
    goals = _goal_text(results["goals"])
    if goals:
        sections.append("Goal (batch 8):\n\n" + "\n".join(f"- {line}" for line in goals.splitlines()))
    acc = results.get("accuracy")
    if acc:
        sections.append(accuracy_markdown(acc))
    return sections


def accuracy_markdown(acc: dict[str, Any]) -> str:
    """The accuracy section of ``int8.md``: PCK fp32 vs int8 per set, float nodes, calibration, recipe table."""
    lines = ["## Accuracy (shipped weights)", "", acc.get("text", "")]
    if acc.get("sets"):
        rows = [[s["name"], s["persons"], f"{s['fp32']:.4f}", f"{s['int8']:.4f}", f"{s['fp32'] - s['int8']:+.4f}"]
                for s in acc["sets"]]
        lines += ["", markdown_table(["validation set", "persons", "PCK@0.2 fp32 ONNX", "PCK@0.2 int8",
                                      "loss (fp32 - int8)"], rows)]
    if acc.get("recipes"):
        def num(v: float | None, spec: str) -> str:
            return "–" if v is None else format(v, spec)

        rows = [[r["label"], num(r.get("pck"), ".4f"), num(r.get("loss"), "+.4f"), fmt(r.get("ms_batch8")),
                 num(r.get("speedup"), ".2f"), r.get("note", "")] for r in acc["recipes"]]
        lines += ["", acc.get("recipes_text", ""), "",
                  markdown_table(["recipe", "PCK@0.2 LSPET val", "loss vs fp32", "ms/batch 8", "x fp32 ORT", "note"],
                                 rows)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="int8 vs fp32 ONNX Runtime vs PyTorch inference speed")
    p.add_argument("--models", nargs="+", type=parse_model, default=None,
                   help="NAME@HxW (random weights) or weights FILE (default: shipped 128x96, r_a4 and h_a4 at 256x192)")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per path (default 5)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: usable cores)")
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for int8.json and int8.md")
    p.add_argument("--work-dir", default=str(DEFAULT_WORK), help="exported / quantized graphs (reused)")
    p.add_argument("--calibration-count", type=int, default=48, help="LSPET training crops to calibrate on")
    p.add_argument("--lspet", default="../shared/data/lspet", help="LSPET root for the calibration crops")
    p.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 products measuring the peaks")
    p.add_argument("--prepare-only", action="store_true", help="export and quantize, time nothing")
    p.add_argument("--accuracy", default=None, help="a JSON file of measured accuracy to include in int8.md")
    p.add_argument("--note", default="", help="text stored with the results")
    p.add_argument("--render-only", action="store_true",
                   help="time nothing: rewrite int8.md from --out's int8.json (with --accuracy)")
    p.add_argument("--compare", nargs="+", default=None, metavar="LABEL=FILE",
                   help="only time these ONNX files against each other at --batch, write int8-recipes.json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python benchmarks/bench_int8.py " + " ".join(shlex.quote(a) for a in (
        sys.argv[1:] if argv is None else list(argv)))
    if args.compare:
        graphs = dict(item.split("=", 1) for item in args.compare)
        found: dict[str, Any] = {"command": command.strip(), "machine": machine_info(args.threads),
                                 "repeats": args.repeats, "graphs": graphs, "batches": {}}
        for b in args.batch:
            found["batches"][str(b)] = time_graphs(graphs, b, args.repeats, args.threads)
            for k, v in found["batches"][str(b)].items():
                print(f"batch {b} {k:28s} {1000 * v['median_s']:9.1f} ms {v['images_per_s']:8.2f} img/s")
        print(f"wrote {write_json(Path(args.out) / 'int8-recipes.json', found)}")
        return 0
    accuracy = json.loads(Path(args.accuracy).read_text()) if args.accuracy else None
    if args.render_only:
        saved = Path(args.out) / "int8.json"
        results = json.loads(saved.read_text())
        results["accuracy"] = accuracy or results.get("accuracy")
        write_json(saved, results)
        print(f"wrote {write_markdown(Path(args.out) / 'int8.md', 'int8 inference benchmark', _markdown(results))}")
        return 0
    results = run_benchmark(Int8Bench(
        models=args.models or DEFAULT_MODELS, batch=args.batch, repeats=args.repeats, threads=args.threads,
        out=args.out, work_dir=args.work_dir, paths=args.paths, calibration_count=args.calibration_count,
        lspet_root=args.lspet, matmul_size=args.matmul_size, prepare_only=args.prepare_only, accuracy=accuracy,
        note=args.note, command=command.strip(),
    ))
    for f in results.get("files", []):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
