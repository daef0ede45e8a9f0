"""``tpose bench``: how fast a model runs on your machine, at the size, batch, precision and path you choose.

The answer to "how many images per second will I get here?" before running on real data: a model (a variant
name, a tag, a weights file, or an ``.onnx`` export, int8 included) is called on random images, warm-up calls
first, then the paths asked for are timed interleaved round-robin (``tpose.bench.timing``), medians over
``repeats``. Paths: ``torch`` (the model under ``torch.inference_mode``), ``torch_cl`` (the same in
channels_last), ``compile`` (``torch.compile`` of it, compiled in the first warm-up call) and ``onnxruntime``
(the ``.onnx`` file itself, or the torch model exported to a temporary file). ``bf16`` runs the torch paths
under bf16 autocast: fast only where the CPU has native bf16 (or on a GPU). The project's own benchmarks
(comparisons with the released formulation, training steps, data pipeline, int8, video, detector) are scripts
beside the package: ``python benchmarks/bench_<name>.py --help`` in a checkout.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..export.onnx_export import export_onnx
from ..factory import LoadedModel, load_pose_model
from ..models.onnx_model import OnnxPoseModel
from ..utils.cores import usable_cores
from .timing import interleaved, summarize

PATHS = ("torch", "torch_cl", "compile", "onnxruntime")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class SpeedOptions:
    """What ``tpose bench`` times. ``model``/``weights`` as everywhere in tpose (both None: the shipped
    weights; a variant name alone: its random initial weights, as fast as trained ones); ``input_size``
    (H, W), None: the model's own; ``threads``: torch and ONNX Runtime intra-op threads, None: usable cores."""

    model: str | None = None
    weights: str | None = None
    input_size: tuple[int, int] | None = None
    batch: tuple[int, ...] = (1,)
    precision: str = "fp32"
    paths: tuple[str, ...] = ("torch",)
    threads: int | None = None
    repeats: int = 10
    warmup: int = 2
    device: str = "cpu"

    def __post_init__(self) -> None:
        bad = [p for p in self.paths if p not in PATHS]
        if bad or not self.paths:
            raise ValueError(f"paths must be some of {', '.join(PATHS)}, got {list(self.paths)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (int8: an int8 .onnx file), "
                             f"got {self.precision!r}")
        if not self.batch or min(self.batch) < 1:
            raise ValueError(f"batch sizes must be positive, got {list(self.batch)}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {self.repeats} and {self.warmup}")


@dataclass(frozen=True)
class SpeedRow:
    """One timed (path, batch): median and fastest milliseconds per batch, and what that makes per image."""

    path: str
    precision: str
    batch: int
    median_ms: float
    min_ms: float
    spread: float
    ms_per_image: float
    images_per_s: float


@dataclass(frozen=True)
class SpeedReport:
    """What was timed, where, and the rows."""

    model: str
    weights: str | None
    input_size: tuple[int, int]
    threads: int
    device: str
    repeats: int
    rows: list[SpeedRow]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(options: SpeedOptions) -> LoadedModel:
    backend = "onnxruntime" if str(options.weights or options.model or "").lower().endswith(".onnx") else None
    with warnings.catch_warnings():  # random initial weights are fine here: speed does not depend on them
        warnings.filterwarnings("ignore", message="no weights given")
        return load_pose_model(options.model, options.weights, backend=backend, device=options.device,
                               input_size=options.input_size, threads=options.threads)


def _check(loaded: LoadedModel, options: SpeedOptions) -> None:
    if loaded.backend == "onnxruntime":
        other = [p for p in options.paths if p != "onnxruntime"]
        if other:
            raise ValueError(f"{loaded.weights} is an ONNX file: only the onnxruntime path runs it, not {other}")
    if options.precision == "bf16" and "onnxruntime" in options.paths:
        raise ValueError("bf16 runs the torch paths only: time onnxruntime in fp32, or an int8 .onnx file")


def _runner(path: str, loaded: LoadedModel, x: torch.Tensor, options: SpeedOptions, folder: Path
            ) -> Callable[[], Any]:
    """A no-argument call that runs one forward of ``x`` along ``path``."""
    model = loaded.model
    if path == "onnxruntime" and not isinstance(model, OnnxPoseModel):
        cpu_model = copy.deepcopy(model).to("cpu")
        file = export_onnx(cpu_model, folder / f"{loaded.name}.onnx", input_size=loaded.input_size)
        model = OnnxPoseModel(file, threads=options.threads, device=str(loaded.device))
    elif path == "torch_cl":
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    elif path == "compile":
        model = torch.compile(copy.deepcopy(model))
    bf16 = options.precision == "bf16" and path != "onnxruntime"
    device_type = loaded.device.type

    def run() -> Any:
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else nullcontext():
            return model(x)

    return run


def measure_speed(options: SpeedOptions, say: Callable[[str], None] | None = None) -> SpeedReport:
    """Time every (path, batch) of ``options`` here; ``say`` hears what is being done."""
    say = say or (lambda _msg: None)
    threads = int(options.threads or usable_cores())
    torch.set_num_threads(threads)
    loaded = _load(options)
    _check(loaded, options)
    precision = "int8" if getattr(loaded.model, "quantized", False) else options.precision
    sync = (lambda: torch.cuda.synchronize(loaded.device)) if loaded.device.type == "cuda" else None
    rows: list[SpeedRow] = []
    with tempfile.TemporaryDirectory(prefix="tpose-bench-") as tmp:
        for batch in sorted(set(options.batch)):
            x = torch.randn(batch, 3, *loaded.input_size, device=loaded.device)
            fns = {p: _runner(p, loaded, x, options, Path(tmp)) for p in options.paths}
            say(f"batch {batch}: timing {', '.join(fns)} x {options.repeats} (after {options.warmup} warm-up calls)")
            started = time.perf_counter()
            times = interleaved(fns, repeats=options.repeats, warmup=options.warmup, sync=sync)
            say(f"batch {batch}: {time.perf_counter() - started:.1f} s")
            for path in options.paths:
                s = summarize(times[path])
                rows.append(SpeedRow(path, precision, batch, 1000 * s["median_s"], 1000 * s["min_s"], s["spread"],
                                     1000 * s["median_s"] / batch, batch / s["median_s"]))
    return SpeedReport(loaded.name, loaded.weights, loaded.input_size, threads, str(loaded.device), options.repeats,
                       rows)


def format_speed(report: SpeedReport) -> str:
    """The report as a plain-text table, one line per (path, batch)."""
    h, w = report.input_size
    lines = [f"{report.model} ({report.weights or 'random initial weights'}), input {h}x{w}, {report.device}, "
             f"{report.threads} threads, median of {report.repeats}",
             f"{'path':12s} {'precision':9s} {'batch':>5s} {'ms/batch':>10s} {'ms/img':>9s} {'img/s':>9s} "
             f"{'spread':>7s}"]
    for r in report.rows:
        lines.append(f"{r.path:12s} {r.precision:9s} {r.batch:5d} {r.median_ms:10.1f} {r.ms_per_image:9.2f} "
                     f"{r.images_per_s:9.2f} {100 * r.spread:6.0f}%")
    return "\n".join(lines)


def write_speed(report: SpeedReport, path: str | Path) -> Path:
    """The report as JSON (with this machine's torch version), for keeping next to other measurements."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report.to_dict(), "torch": torch.__version__}, indent=1) + "\n")
    return path
