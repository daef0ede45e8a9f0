"""Deployment: ONNX export checked against PyTorch; the exported file runs as ``OnnxPoseModel`` (re-exported)."""

from ..models.onnx_model import HEATMAPS_NAME, INPUT_NAME, OnnxPoseModel, attention_output_name, read_onnx_metadata
from ..utils.ort import create_session, session_options
from .onnx_export import (
    DEFAULT_OPSET,
    ExportCheck,
    ExportCheckError,
    ExportOptions,
    check_export,
    export_onnx,
    run_export,
    shipped_check_images,
)

__all__ = [
    "DEFAULT_OPSET",
    "HEATMAPS_NAME",
    "INPUT_NAME",
    "OnnxPoseModel",
    "attention_output_name",
    "create_session",
    "read_onnx_metadata",
    "session_options",
    "ExportCheck",
    "ExportCheckError",
    "ExportOptions",
    "check_export",
    "export_onnx",
    "run_export",
    "shipped_check_images",
]
