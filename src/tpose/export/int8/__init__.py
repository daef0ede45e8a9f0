"""Static int8 quantization of an exported tpose ONNX file, gated by the PCK it costs on real persons.

Why static and why gated: dynamic quantization re-measures activation ranges on every call (slow on a
2-core CPU), and an int8 pose model that loses joints is worse than none, so every int8 file this module
writes carries the PCK@0.2 of the fp32 and the int8 graph measured on validation persons the caller named,
and the search keeps in float the nodes whose quantization costs accuracy until the loss is within a
tolerance.

Pipeline: ``quant_pre_process`` (shape inference, BatchNorm folded into convolutions) -> calibration on
person crops from *training* data (a data set spec, person records, or a folder of images, each image one
whole-image box unless boxes are given) -> ``onnxruntime.quantization.quantize_static`` with the chosen
:class:`QuantSettings` -> PCK of fp32 vs int8 -> (if over the tolerance) more nodes kept in float -> the
fp32 file's metadata plus a ``quantization`` entry in the ``tpose`` JSON (``"precision": "int8"``).

Default recipe (measured on the shipped R-A4 and on H-A4, ``benchmarks/results/int8.md``): QDQ, per-channel
weights, u8 activations x s8 weights, MinMax calibration, every Conv and MatMul int8 and the attention
Softmax in float (ONNX Runtime's QLinearSoftmax was 2.4x slower than its float Softmax).

Type choice on x86: u8 activations x s8 weights (the ``QUInt8``/``QInt8`` default here) run on
VNNI's ``vpdpbusd`` where the CPU has AVX-512 VNNI / AVX-VNNI. Without VNNI, ONNX Runtime's AVX2 kernel
multiplies u8 x s8 pairs with ``vpmaddubsw``, whose int16 sums of two products can saturate; 7-bit weights
(``reduce_range=True``) avoid it at some accuracy cost. The module records which CPU flags were seen.
"""

from .calibration import CropSet, calibration_crops, crop_records
from .command import main
from .gate import AccuracyGate, ValidationSet, accuracy_gate, load_validation, measure_pck
from .graph import exclusion_groups, float_nodes, preprocess, quantize_onnx, runtime_graph
from .pipeline import QuantizationReport, quantize_model, write_metadata
from .search import SearchStep, node_errors, search_float_nodes
from .settings import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_COUNT,
    DEFAULT_TOLERANCE,
    EXCLUSION_GROUPS,
    QUANT_FORMATS,
    CalibrationDataRequired,
    Int8Options,
    QuantSettings,
)

__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_CALIBRATION_COUNT",
    "DEFAULT_TOLERANCE",
    "EXCLUSION_GROUPS",
    "QUANT_FORMATS",
    "AccuracyGate",
    "CalibrationDataRequired",
    "Int8Options",
    "CropSet",
    "QuantSettings",
    "QuantizationReport",
    "SearchStep",
    "ValidationSet",
    "accuracy_gate",
    "calibration_crops",
    "crop_records",
    "exclusion_groups",
    "float_nodes",
    "load_validation",
    "main",
    "measure_pck",
    "node_errors",
    "preprocess",
    "quantize_model",
    "quantize_onnx",
    "runtime_graph",
    "search_float_nodes",
    "write_metadata",
]
