"""Deployment: ONNX export checked against PyTorch, and ONNX Runtime behind the torch model's call."""

from .onnx_export import (
    DEFAULT_OPSET,
    HEATMAPS_NAME,
    INPUT_NAME,
    ExportCheck,
    ExportCheckError,
    attention_output_name,
    check_export,
    export_onnx,
    run_export,
)
from .onnx_runtime import OnnxPoseModel, create_session, default_threads, read_metadata, session_options

__all__ = [
    "DEFAULT_OPSET",
    "HEATMAPS_NAME",
    "INPUT_NAME",
    "ExportCheck",
    "ExportCheckError",
    "OnnxPoseModel",
    "attention_output_name",
    "check_export",
    "create_session",
    "default_threads",
    "export_onnx",
    "read_metadata",
    "run_export",
    "session_options",
]
