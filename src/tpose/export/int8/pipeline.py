"""``quantize_model``: export -> calibrate -> quantize -> gate -> report, and the metadata an int8 file carries."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...utils.machine import cpu_features, cpu_model
from ..onnx_export import set_metadata_props
from .calibration import calibration_crops
from .gate import AccuracyGate, load_validation, measure_pck
from .graph import exclusion_groups, float_nodes, load_graph, preprocess, quantize_onnx
from .search import SearchStep, search_float_nodes
from .settings import (
    CALIBRATION_HELP,
    CalibrationDataRequired,
    Int8Options,
    QuantSettings,
)

# ------------------------------------------------------------------------------------------- the report


@dataclass
class QuantizationReport:
    """What :func:`quantize_model` did and measured: recipe, calibration data, float nodes, PCK fp32 vs int8."""

    input: str
    output: str
    settings: QuantSettings
    calibration: str
    calibration_count: int
    gate: AccuracyGate | None
    kept_float: list[str]
    float_nodes_in_graph: list[str]
    steps: list[SearchStep]
    bytes_fp32: int
    bytes_int8: int
    seconds: float
    machine: dict[str, Any]

    @property
    def passed(self) -> bool | None:
        return None if self.gate is None else self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input, "output": self.output, "settings": self.settings.to_dict(),
            "label": self.settings.label(), "calibration": self.calibration,
            "calibration_count": self.calibration_count,
            "accuracy": None if self.gate is None else self.gate.to_dict(),
            "kept_float": list(self.kept_float), "float_nodes_in_graph": list(self.float_nodes_in_graph),
            "search": [s.to_dict() for s in self.steps], "bytes_fp32": self.bytes_fp32,
            "bytes_int8": self.bytes_int8, "seconds": self.seconds, "machine": self.machine,
        }

    def summary(self) -> str:
        lines = [f"int8 {self.output} ({self.bytes_int8 / 2**20:.1f} MiB, fp32 {self.bytes_fp32 / 2**20:.1f} MiB): "
                 f"{self.settings.label()}",
                 f"calibration: {self.calibration}"]
        if self.gate is None:
            lines.append("accuracy: NOT MEASURED (no validation data named)")
        else:
            lines.append("accuracy (PCK@0.2, 12 limb joints, flip test):")
            lines += ["  " + line for line in self.gate.summary().splitlines()]
        kept = ", ".join(self.kept_float) if self.kept_float else "none"
        lines.append(f"kept in float: {kept}")
        if self.steps:
            lines.append(f"search: {len(self.steps)} tries")
        lines.append(f"{self.seconds:.0f} s")
        return "\n".join(lines)


def _machine() -> dict[str, Any]:
    import onnxruntime


    return {"cpu": cpu_model(), "cpu_flags": cpu_features(), "onnxruntime": onnxruntime.__version__}


def write_metadata(fp32_path: str | Path, int8_path: str | Path, quantization: Mapping[str, Any]) -> None:
    """Copy the fp32 file's metadata into the int8 file and add ``precision`` and ``quantization`` to the
    ``tpose`` JSON, so a loader (``OnnxPoseModel(...).metadata``) can tell an int8 graph and how it was made."""
    src = load_graph(fp32_path)
    props = {p.key: p.value for p in src.metadata_props}
    info = json.loads(props.get("tpose", "{}") or "{}")
    info["precision"] = "int8"
    info["quantization"] = dict(quantization)
    props["tpose"] = json.dumps(info, default=str)
    set_metadata_props(int8_path, props)


def _input_size(fp32_path: str | Path) -> tuple[int, int]:
    graph = load_graph(fp32_path).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not (dims[2].dim_value and dims[3].dim_value):
        raise ValueError(f"{fp32_path}: expected an image input [batch, 3, H, W] with fixed H and W")
    return int(dims[2].dim_value), int(dims[3].dim_value)


def quantize_model(
    fp32_onnx: str | Path,
    out_path: str | Path | None = None,
    calibration: Any = None,
    validation: Any = None,
    *,
    boxes: Sequence[Sequence[float] | None] | None = None,
    options: Int8Options | None = None,
    progress: Any = None,
) -> QuantizationReport:
    """fp32 tpose ONNX -> int8 ONNX at ``out_path`` (default ``<stem>_int8.onnx`` beside it), gated by PCK.

    ``calibration``: training persons (a data set spec or list of specs, records, a folder or image files
    with optional ``boxes``, or crops [N, 3, H, W]); ``options.calibration_count`` of them are drawn. Without
    it :class:`CalibrationDataRequired` is raised. ``validation``: data set specs whose persons measure
    PCK@0.2 (12 limb joints, flip test) of the fp32 and the int8 graph; with ``options.search`` the nodes
    whose quantization costs more than ``options.tolerance`` are kept in float (:func:`search_float_nodes`).
    Without validation the file is written unmeasured (the report says so). The default recipe
    (``options.settings``): QDQ, per-channel, u8 activations x s8 weights, MinMax, the attention Softmax in
    float (measured best here, ``benchmarks/results/int8.md``). ``progress``: a callable given each message.
    """
    options = options or Int8Options()
    threads = options.threads
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    fp32_onnx = Path(fp32_onnx)
    if not fp32_onnx.is_file():
        raise FileNotFoundError(f"{fp32_onnx}: no such ONNX file")
    if calibration is None:
        raise CalibrationDataRequired(CALIBRATION_HELP)
    settings = options.settings
    out = Path(out_path) if out_path is not None else fp32_onnx.with_name(f"{fp32_onnx.stem}_int8.onnx")
    if out.resolve() == fp32_onnx.resolve():
        raise ValueError(f"the int8 output must not overwrite its fp32 input {fp32_onnx}")
    size = _input_size(fp32_onnx)
    crops = calibration_crops(calibration, size, options.calibration_count, seed=options.seed, boxes=boxes)
    if crops.images.shape[2:] != size:
        raise ValueError(f"calibration crops are {crops.images.shape[2:]} but the graph takes {size}")
    say(f"calibration: {crops.description}")
    sets = load_validation(validation, size) if validation is not None else []
    shared = sorted(set(crops.sources) & set().union(*(s.image_paths for s in sets))) if sets else []
    if shared:
        raise ValueError(f"calibration and validation share {len(shared)} images (e.g. {shared[0]}): calibrate on "
                         "training data only")
    with tempfile.TemporaryDirectory(prefix="tpose-int8-") as tmp:
        pre = preprocess(fp32_onnx, Path(tmp) / "preprocessed.onnx")
        cache = Path(tmp) / f"calibration-{settings.method}.json"
        steps: list[SearchStep] = []
        gate: AccuracyGate | None = None
        if sets:
            fp32_pck = measure_pck(fp32_onnx, sets, threads)
            say("fp32 PCK@0.2: " + ", ".join(f"{k} {v:.4f}" for k, v in fp32_pck.items()))
            if options.search:
                settings, gate, steps = search_float_nodes(pre, out, crops.images, sets, fp32_pck, options,
                                                           calibration_cache=cache, progress=say)
            else:
                quantize_onnx(pre, out, crops, settings, cache)
                gate = AccuracyGate(fp32_pck, measure_pck(out, sets, threads), {s.name: s.num_persons for s in sets},
                                    options.tolerance)
        else:
            quantize_onnx(pre, out, crops, settings, cache)
        if settings.float_groups:  # name the groups' nodes in the report and the metadata
            groups = exclusion_groups(pre)
            named = [n for g in settings.float_groups for n in groups[g]]
            settings = replace(settings, exclude_nodes=tuple(dict.fromkeys([*settings.exclude_nodes, *named])),
                               float_groups=())
    in_graph = float_nodes(out)
    quant = {
        "tool": "onnxruntime.quantization.quantize_static", "settings": settings.to_dict(),
        "label": settings.label(), "calibration": crops.description, "calibration_count": len(crops),
        "excluded_nodes": list(settings.exclude_nodes), "float_nodes_in_graph": in_graph,
        "accuracy": None if gate is None else gate.to_dict(), "machine": _machine(),
    }
    write_metadata(fp32_onnx, out, quant)
    report = QuantizationReport(
        input=str(fp32_onnx), output=str(out), settings=settings, calibration=crops.description,
        calibration_count=len(crops), gate=gate, kept_float=list(settings.exclude_nodes),
        float_nodes_in_graph=in_graph, steps=steps, bytes_fp32=fp32_onnx.stat().st_size,
        bytes_int8=out.stat().st_size, seconds=round(time.perf_counter() - started, 1), machine=quant["machine"],
    )
    return report
