"""The int8 recipe: quantization format, types, calibration method and the nodes kept in float."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

QUANT_FORMATS = ("qdq", "qoperator")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("u8", "s8")
DEFAULT_TOLERANCE = 0.005
DEFAULT_CALIBRATION_COUNT = 512
# the groups the search keeps in float, in this order, before it turns to single nodes
EXCLUSION_GROUPS = ("final_conv", "first_conv", "attention", "encoder_matmul", "residual_add")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

CALIBRATION_HELP = (
    "static int8 quantization needs calibration data: real person crops from training data. Give "
    "calibration= a data set spec such as {'type': 'lspet', 'root': '../shared/data/lspet', 'first': 1, "
    "'last': 9000} (or a list of specs, e.g. LSPET 1-9000 plus MPII minus its validation split), person "
    "records with boxes, or a folder / list of image files (each image is one whole-image person box unless "
    "boxes= are given). Never calibrate on the validation persons."
)


class CalibrationDataRequired(ValueError):
    """No calibration data was named: static quantization cannot measure activation ranges without it."""


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class QuantSettings:
    """One quantization recipe: format, granularity, types, calibration method, and what stays float."""

    format: str = "qdq"
    per_channel: bool = True
    activation_type: str = "u8"
    weight_type: str = "s8"
    reduce_range: bool = False
    method: str = "minmax"
    percentile: float = 99.999
    exclude_op_types: tuple[str, ...] = ()
    exclude_nodes: tuple[str, ...] = ()
    float_groups: tuple[str, ...] = ()
    # the Softmax in float between int8 matrix products (its input's Q/DQ pair removed after quantization):
    # ORT's QLinearSoftmax was 2.4x slower than the float Softmax here, and the whole attention block in float
    # left H-A4 at 1.5x; with this the shipped graph ran 3.2x and H-A4 1.8x fp32 ONNX Runtime at batch 8
    float_softmax: bool = True

    def __post_init__(self) -> None:
        if self.format not in QUANT_FORMATS:
            raise ValueError(f"format must be one of {QUANT_FORMATS}, got {self.format!r}")
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        for name in ("activation_type", "weight_type"):
            if getattr(self, name) not in QUANT_TYPES:
                raise ValueError(f"{name} must be one of {QUANT_TYPES}, got {getattr(self, name)!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")
        object.__setattr__(self, "exclude_op_types", tuple(self.exclude_op_types))
        object.__setattr__(self, "exclude_nodes", tuple(dict.fromkeys(self.exclude_nodes)))
        object.__setattr__(self, "float_groups", tuple(self.float_groups))
        unknown = [g for g in self.float_groups if g not in EXCLUSION_GROUPS]
        if unknown:
            raise ValueError(f"unknown float_groups {unknown}; known: {EXCLUSION_GROUPS}")

    def label(self) -> str:
        """Short text for tables: ``qdq/per-channel/u8s8/minmax``."""
        types = f"{self.activation_type}{self.weight_type}" + ("/reduce-range" if self.reduce_range else "")
        method = self.method if self.method != "percentile" else f"percentile {self.percentile:g}"
        gran = "per-channel" if self.per_channel else "per-tensor"
        floats = "".join(f"/{g} float" for g in self.float_groups) + ("/softmax float" if self.float_softmax else "")
        return f"{self.format}/{gran}/{types}/{method}{floats}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exclude_op_types"] = list(self.exclude_op_types)
        out["exclude_nodes"] = list(self.exclude_nodes)
        out["float_groups"] = list(self.float_groups)
        return out


def ort_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "u8" else QuantType.QInt8


def ort_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


@dataclass(frozen=True)
class Int8Options:
    """How :func:`~tpose.export.int8.quantize_model` calibrates, searches and gates.

    ``calibration_count`` crops are drawn (with ``seed``) from the calibration data; ``settings`` is the recipe
    tried first; with ``search`` the ``groups`` of nodes, then up to ``max_single_nodes`` single nodes, are
    kept in float until no validation set loses more than ``tolerance`` PCK@0.2 (``prune``: groups added
    before the one that passed are re-quantized where the gate still passes).
    """

    settings: QuantSettings = field(default_factory=QuantSettings)
    calibration_count: int = DEFAULT_CALIBRATION_COUNT
    tolerance: float = DEFAULT_TOLERANCE
    search: bool = True
    groups: Sequence[str] = EXCLUSION_GROUPS
    max_single_nodes: int = 16
    prune: bool = True
    threads: int | None = None
    seed: int = 0

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any] | None, calibration_count: int | None = None, tolerance: float | None = None,
        **chosen: Any,
    ) -> Int8Options:
        """Options from an int8 data YAML (its ``calibration_count:`` and ``tolerance:``), where the values given
        here (not None) win; ``chosen`` sets other fields."""
        data = data or {}
        defaults = cls()
        count = calibration_count or int(data.get("calibration_count", defaults.calibration_count))
        gate = tolerance if tolerance is not None else float(data.get("tolerance", defaults.tolerance))
        return cls(calibration_count=count, tolerance=gate, **chosen)
