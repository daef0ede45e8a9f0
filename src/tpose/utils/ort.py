"""ONNX Runtime sessions with tpose's defaults, for the pose models and the person detector alike.

Defaults: intra-op threads = the usable cores, one inter-op thread, and *no spinning*: ONNX Runtime's
own default keeps idle worker threads busy-waiting for the next call, which on a small CPU takes the
cores from whatever runs between calls (decoding, drawing, torch, another process) and slowed a PyTorch
forward run right after an ONNX one ~25x here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cores import usable_cores

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "layout", "all")


def session_options(threads: int | None = None, optimization: str = "all", spinning: bool = False) -> Any:
    """``onnxruntime.SessionOptions``: ``threads`` intra-op threads (default: usable cores), sequential
    execution, graph optimisation ``optimization``, worker spinning off unless ``spinning``."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "layout": getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_LAYOUT", ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: warnings about unused initializers of int8 graphs are noise
    opts.intra_op_num_threads = int(threads or usable_cores())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = levels[optimization]
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    return opts


def providers_for(device: Any = "cpu") -> list[str]:
    """CPU always; the CUDA provider first for a CUDA device when this onnxruntime build has it."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"device {str(device)!r} asks for CUDA but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu, or use --device cpu)"
            )
        providers.insert(0, "CUDAExecutionProvider")
    return providers


def create_session(
    model: str | Path | bytes,
    threads: int | None = None,
    optimization: str = "all",
    device: Any = "cpu",
    spinning: bool = False,
    label: str | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for a file (or serialized model bytes, named by ``label``).

    A missing file, or one ONNX Runtime cannot load (corrupt, truncated, not ONNX), fails naming the file.
    """
    import onnxruntime as ort

    name = label or str(model) if not isinstance(model, bytes) else (label or "<in-memory model>")
    if not isinstance(model, bytes):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: the file is empty, not an ONNX model (export or download it again)")
        source: str | bytes = str(path)
    else:
        source = model
    opts = session_options(threads, optimization, spinning)
    providers = providers_for(device)
    try:
        return ort.InferenceSession(source, opts, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for corrupt or foreign files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{name}: ONNX Runtime cannot load this file (corrupt, truncated or not an ONNX model: "
                         f"{first[:300]}); export or download it again") from err
