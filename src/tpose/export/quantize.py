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

from __future__ import annotations

import copy
import inspect
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.records import PersonRecord

QUANT_FORMATS = ("qdq", "qoperator")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("u8", "s8")
DEFAULT_TOLERANCE = 0.005
DEFAULT_CALIBRATION_COUNT = 512
# the groups the search keeps in float, in this order, before it turns to single nodes
EXCLUSION_GROUPS = ("final_conv", "first_conv", "attention", "encoder_matmul", "residual_add")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

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


def _ort_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "u8" else QuantType.QInt8


def _ort_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


# ------------------------------------------------------------------------------------------------- crops


@dataclass
class CropSet:
    """Normalised person crops [N, 3, H, W] (float32, as the model sees them) and where they came from."""

    images: np.ndarray
    description: str
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _image_files(entry: str | Path | Sequence[str | Path]) -> list[Path]:
    entries = [entry] if isinstance(entry, (str, Path)) else list(entry)
    files: list[Path] = []
    for item in entries:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"calibration image or folder not found: {p}")
    if not files:
        raise CalibrationDataRequired(f"no {'/'.join(_IMAGE_SUFFIXES)} images in {entries}: " + CALIBRATION_HELP)
    return files


def _image_records(files: Sequence[Path], boxes: Sequence[Sequence[float] | None] | None) -> list[PersonRecord]:
    """One record per image: the given box, or the whole image (a folder of person crops)."""
    from ..data.image_io import image_size

    if boxes is not None and len(boxes) != len(files):
        raise ValueError(f"{len(boxes)} boxes for {len(files)} calibration images: give one box (or None) per image")
    records = []
    for i, path in enumerate(files):
        box = None if boxes is None else boxes[i]
        if box is None:
            w, h = image_size(path)
            box = (0.0, 0.0, float(w), float(h))
        records.append(PersonRecord(image_path=str(path), box=np.asarray(box, np.float32),
                                    keypoints=np.zeros((1, 3), np.float32), image_id=i))
    return records


def _is_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and "type" in value


def _spec_label(spec: Mapping[str, Any]) -> str:
    name = spec.get("name") or spec["type"]
    bits = []
    if spec.get("first") or spec.get("last"):
        bits.append(f"images {spec.get('first') or 1}-{spec.get('last') or 'end'}")
    if spec.get("image_ids") is not None:
        bits.append(f"image ids {Path(str(spec['image_ids'])).name}" if isinstance(spec["image_ids"], (str, Path))
                    else f"{len(spec['image_ids'])} image ids")
    if spec.get("exclude_image_ids") is not None:
        ex = spec["exclude_image_ids"]
        bits.append(f"minus {Path(str(ex)).name}" if isinstance(ex, (str, Path)) else f"minus {len(ex)} image ids")
    return f"{name} ({', '.join(bits)})" if bits else str(name)


def source_parts(
    source: Any, boxes: Sequence[Sequence[float] | None] | None = None
) -> list[tuple[str, list[PersonRecord]]]:
    """(label, records) for each part of a calibration or validation source.

    ``source``: a data set spec (``{"type": "lspet", ...}``, read by ``tpose.data.mixture.build_part``), a
    ``DataPart``, a list of person records, a folder or image file(s) (whole-image boxes unless ``boxes``), or a
    list mixing specs and parts. None raises :class:`CalibrationDataRequired`.
    """
    from ..data.mixture import DataPart, build_part

    if source is None or (isinstance(source, (list, tuple)) and len(source) == 0):
        raise CalibrationDataRequired(CALIBRATION_HELP)
    if isinstance(source, (str, Path)):
        return [(f"images in {source}", _image_records(_image_files(source), boxes))]
    if _is_spec(source):
        return [(_spec_label(source), build_part(source).records)]
    if isinstance(source, DataPart):
        return [(source.name, list(source.records))]
    if isinstance(source, Sequence):
        items = list(source)
        if all(isinstance(r, PersonRecord) for r in items):
            return [(f"{len(items)} person records", items)]
        if all(isinstance(r, (str, Path)) for r in items):
            return [(f"{len(items)} image files", _image_records(_image_files(items), boxes))]
        parts: list[tuple[str, list[PersonRecord]]] = []
        for item in items:
            parts += source_parts(item)
        return parts
    raise TypeError(f"cannot read calibration/validation data from {type(source).__name__}: " + CALIBRATION_HELP)


def crop_records(records: Sequence[PersonRecord], image_size: Sequence[int], padding: float = 1.25) -> np.ndarray:
    """Eval-mode crops of ``records`` exactly as ``TopDownDataset(train=False)`` makes them, [N, 3, H, W]."""
    import cv2

    from ..data.affine import box_to_center_scale
    from ..data.image_io import read_image
    from ..data.transforms import CropParams, crop_matrix, normalize_image

    h, w = int(image_size[0]), int(image_size[1])
    out = np.empty((len(records), 3, h, w), dtype=np.float32)
    for i, rec in enumerate(records):
        x, y, bw, bh = (float(v) for v in rec.box)
        center, scale = box_to_center_scale((x, y, max(bw, 1.0), max(bh, 1.0)), w / h, padding)
        matrix = crop_matrix(CropParams(center=center, scale=scale), (w, h))
        image = cv2.warpAffine(read_image(rec.image_path), matrix, (w, h), flags=cv2.INTER_LINEAR)
        out[i] = normalize_image(image)
    return out


def calibration_crops(
    source: Any,
    image_size: Sequence[int],
    count: int = DEFAULT_CALIBRATION_COUNT,
    seed: int = 0,
    boxes: Sequence[Sequence[float] | None] | None = None,
) -> CropSet:
    """``count`` person crops drawn (seeded, without replacement) evenly from the parts of ``source``.

    A :class:`CropSet` or an array [N, 3, H, W] passes through (cut to ``count``). Sources as in
    :func:`source_parts`; each part gives an equal share, a part smaller than its share gives all it has.
    """
    if isinstance(source, CropSet):
        return CropSet(source.images[:count], source.description, list(source.sources))
    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[1] != 3:
            raise ValueError(f"calibration crops must be [N, 3, H, W], got {source.shape}")
        arr = np.ascontiguousarray(source[:count], dtype=np.float32)
        return CropSet(arr, f"{len(arr)} given crops", [])
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    parts = source_parts(source, boxes)
    rng = np.random.default_rng(seed)
    share = [count // len(parts) + (1 if i < count % len(parts) else 0) for i in range(len(parts))]
    chosen: list[PersonRecord] = []
    labels = []
    for (label, records), want in zip(parts, share, strict=True):
        take = min(want, len(records))
        idx = np.sort(rng.choice(len(records), size=take, replace=False)) if take < len(records) else np.arange(take)
        chosen += [records[i] for i in idx]
        labels.append(f"{take} from {label}")
    images = crop_records(chosen, image_size)
    return CropSet(images, f"{len(chosen)} person crops: " + "; ".join(labels), sorted({r.image_path for r in chosen}))


class CropReader:
    """A ``CalibrationDataReader`` over crops: ``get_next()`` yields ``{input: [batch, 3, H, W]}`` until done."""

    def __init__(self, crops: np.ndarray, input_name: str = "image", batch_size: int = 16) -> None:
        self.crops = np.ascontiguousarray(crops, dtype=np.float32)
        self.input_name = input_name
        self.batch_size = int(batch_size)
        self._iter: Iterator[dict[str, np.ndarray]] | None = None
        self._start, self._end = 0, len(self.crops)

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self._start, self._end, self.batch_size):
            yield {self.input_name: self.crops[i : min(i + self.batch_size, self._end)]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end, self._iter = int(start_index), int(end_index), None

    def __len__(self) -> int:
        return len(self.crops)


def _as_reader(crops: np.ndarray, batch_size: int) -> Any:
    """Our reader registered as a subclass of ORT's abstract ``CalibrationDataReader`` (it checks the type)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CropReader, CalibrationDataReader):
        pass

    return _Reader(crops, batch_size=batch_size)


# -------------------------------------------------------------------------------------------- validation


@dataclass
class ValidationSet:
    """Validation persons, cropped once and kept in memory as evaluation batches (every model sees the same)."""

    name: str
    keypoint_set: Any
    batches: list[dict[str, Any]] = field(repr=False)
    num_persons: int = 0
    image_paths: frozenset[str] = field(default=frozenset(), repr=False)


def load_validation(
    source: Any,
    image_size: Sequence[int],
    name: str | None = None,
    batch_size: int = 32,
    limit: int | None = None,
) -> list[ValidationSet]:
    """One :class:`ValidationSet` per data set named in ``source`` (a spec, a list of specs, or sets already
    loaded). Each keeps its own keypoint set (PCK is scored by joint name) and its annotated-joint boxes."""
    import torch

    from ..data.dataset import TopDownDataset
    from ..data.mixture import build_part

    if isinstance(source, ValidationSet):
        return [source]
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise ValueError("validation needs at least one data set spec")
    out: list[ValidationSet] = []
    for item in items:
        if isinstance(item, ValidationSet):
            out.append(item)
            continue
        if not _is_spec(item):
            raise TypeError("validation data must be data set specs ({'type': 'lspet', ...}), "
                            f"got {type(item).__name__}")
        part = build_part(item)
        records = part.records[:limit] if limit else part.records
        ds = TopDownDataset(records, part.keypoint_set, tuple(int(v) for v in image_size), train=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        batches = [dict(b) for b in loader]
        out.append(ValidationSet(name=name or _spec_label(item), keypoint_set=part.keypoint_set, batches=batches,
                                 num_persons=len(records), image_paths=frozenset(r.image_path for r in records)))
    return out


def measure_pck(
    model: Any,
    validation: Sequence[ValidationSet],
    threads: int | None = None,
    flip_test: bool = True,
    threshold: float = 0.2,
) -> dict[str, float]:
    """PCK@``threshold`` over the 12 limb joints (flip test, DARK) of ``model`` on each validation set.

    ``model``: an ONNX path (run by :class:`~tpose.export.OnnxPoseModel`) or any module the evaluator takes.
    """
    from ..data.keypoint_sets import LIMB_JOINTS
    from ..engine.evaluate import evaluate
    from .onnx_runtime import OnnxPoseModel

    net = OnnxPoseModel(model, threads=threads) if isinstance(model, (str, Path)) else model
    out = {}
    for vs in validation:
        report = evaluate(net, vs.batches, net.keypoint_set, data_keypoint_set=vs.keypoint_set, metrics=("pck",),
                          joint_subset=LIMB_JOINTS, flip_test=flip_test, pck_threshold=threshold, progress=False)
        out[vs.name] = float(report.metrics[f"PCK@{threshold:g}"])
    return out


@dataclass
class AccuracyGate:
    """PCK of the fp32 and the int8 graph on the same persons, and whether the loss is within the tolerance."""

    pck_fp32: dict[str, float]
    pck_int8: dict[str, float]
    persons: dict[str, int]
    tolerance: float

    @property
    def loss(self) -> dict[str, float]:
        """fp32 minus int8 per set (positive = int8 is worse)."""
        return {k: self.pck_fp32[k] - self.pck_int8[k] for k in self.pck_fp32}

    @property
    def worst_loss(self) -> float:
        return max(self.loss.values())

    @property
    def passed(self) -> bool:
        return self.worst_loss <= self.tolerance + 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {"pck_fp32": self.pck_fp32, "pck_int8": self.pck_int8, "loss": self.loss, "persons": self.persons,
                "tolerance": self.tolerance, "passed": self.passed, "metric": "PCK@0.2, 12 limb joints, flip test"}

    def summary(self) -> str:
        lines = [f"{k}: fp32 {self.pck_fp32[k]:.4f}  int8 {self.pck_int8[k]:.4f}  loss {self.loss[k]:+.4f} "
                 f"({self.persons[k]} persons)" for k in self.pck_fp32]
        return "\n".join(lines + [f"{'passed' if self.passed else 'FAILED'}: tolerance {self.tolerance:g}"])


def accuracy_gate(
    fp32: Any,
    int8: Any,
    validation: Any,
    tolerance: float = DEFAULT_TOLERANCE,
    threads: int | None = None,
    fp32_pck: dict[str, float] | None = None,
    image_size: Sequence[int] | None = None,
) -> AccuracyGate:
    """Measure PCK@0.2 of ``int8`` against ``fp32`` on ``validation`` (specs or loaded sets); the gate the
    search and :func:`quantize_model` apply. ``fp32_pck`` skips re-measuring the fp32 graph."""
    if image_size is None:
        from .onnx_runtime import OnnxPoseModel

        image_size = OnnxPoseModel(fp32 if isinstance(fp32, (str, Path)) else int8, threads=1).image_size
    sets = load_validation(validation, image_size)
    ref = dict(fp32_pck) if fp32_pck is not None else measure_pck(fp32, sets, threads)
    got = measure_pck(int8, sets, threads)
    return AccuracyGate(pck_fp32=ref, pck_int8=got, persons={s.name: s.num_persons for s in sets},
                        tolerance=float(tolerance))


# ------------------------------------------------------------------------------------------ quantization


def preprocess(fp32_path: str | Path, out_path: str | Path, rewrite_deconv: bool = True) -> Path:
    """ONNX Runtime's quantization pre-processing: symbolic shape inference and graph optimisation (Conv+BN
    folding, constant folding), so that calibration sees the graph that will be quantized; then shared small
    initializers unshared and (``rewrite_deconv``) the head's deconvolution made a Conv + DepthToSpace."""
    import os

    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path).resolve()
    src = str(Path(fp32_path).resolve())
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="tpose-preprocess-") as tmp:
        os.chdir(tmp)  # a failed symbolic inference dumps sym_shape_infer_temp.onnx (+ 70 MB data) into the cwd
        try:
            quant_pre_process(src, str(out_path), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - ORT raises a bare Exception ("Incomplete symbolic shape inference")
            # the HRNet variants' upsampling defeats ORT's symbolic shape inference; ONNX's own suffices there
            quant_pre_process(src, str(out_path), skip_symbolic_shape=True)
        finally:
            os.chdir(here)
    proto = onnx.load(str(out_path))
    changed = _unshare_initializers(proto)
    if rewrite_deconv:
        changed += _deconv_to_conv(proto)
    if changed:
        onnx.save(proto, str(out_path))
    return out_path


def _deconv_to_conv(proto: Any) -> int:
    """Rewrite each 4x4 stride-2 pad-1 ConvTranspose (TransPose-R's head) as a 3x3 Conv to 4x the channels
    followed by DepthToSpace(2): the same function exactly, but ONNX Runtime has an int8 kernel for Conv and
    none for ConvTranspose, which otherwise stays float and took ~14 % of the int8 R-A4's time at 256x192.

    Output pixel (2i + a, 2j + b) of the deconvolution reads input rows i + d (d in -1, 0, 1) with kernel row
    ``kh = 2 * (-d) + a + 1`` where that lies in 0..3; the 3x3 kernel at (d + 1) of output channel
    ``o * 4 + a * 2 + b`` holds it (DepthToSpace's CRD order).
    """
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    done = 0
    for idx, node in enumerate(list(proto.graph.node)):
        if node.op_type != "ConvTranspose" or node.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (list(attrs.get("strides", [1, 1])) != [2, 2] or list(attrs.get("pads", [0] * 4)) != [1, 1, 1, 1]
                or attrs.get("group", 1) != 1 or list(attrs.get("dilations", [1, 1])) != [1, 1]
                or any(attrs.get("output_padding", [0, 0])) or attrs.get("output_shape") or
                attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # [C_in, C_out, 4, 4]
        if w.shape[2:] != (4, 4):
            continue
        c_in, c_out = w.shape[:2]
        wc = np.zeros((c_out, 2, 2, c_in, 3, 3), dtype=np.float32)
        for a in range(2):
            for dh in (-1, 0, 1):
                kh = -2 * dh + a + 1
                if not 0 <= kh <= 3:
                    continue
                for b in range(2):
                    for dw in (-1, 0, 1):
                        kw = -2 * dw + b + 1
                        if 0 <= kw <= 3:
                            wc[:, a, b, :, dh + 1, dw + 1] = w[:, :, kh, kw].T
        base = node.name or f"deconv{idx}"
        w_name = f"{base}_as_conv_W"
        proto.graph.initializer.append(numpy_helper.from_array(wc.reshape(c_out * 4, c_in, 3, 3), w_name))
        inputs = [node.input[0], w_name]
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            b_name = f"{base}_as_conv_B"
            proto.graph.initializer.append(numpy_helper.from_array(np.repeat(bias, 4), b_name))
            inputs.append(b_name)
        mid = f"{base}_as_conv_output"
        conv = helper.make_node("Conv", inputs, [mid], name=f"{base}_as_conv", kernel_shape=[3, 3],
                                pads=[1, 1, 1, 1], strides=[1, 1])
        d2s = helper.make_node("DepthToSpace", [mid], list(node.output), name=f"{base}_depth_to_space",
                               blocksize=2, mode="CRD")
        position = list(proto.graph.node).index(node)
        proto.graph.node.remove(node)
        proto.graph.node.insert(position, d2s)
        proto.graph.node.insert(position, conv)
        done += 1
    if done:  # drop the deconvolutions' own weights when nothing else reads them
        used = {i for n in proto.graph.node for i in n.input}
        unused = [i for i in proto.graph.initializer if i.name not in used]
        for init in unused:
            proto.graph.initializer.remove(init)
    return done


def _unshare_initializers(proto: Any, max_bytes: int = 1 << 20) -> int:
    """Give every node its own copy of a (small) initializer that several nodes read; returns the copies made.

    Why: constant folding can leave one tensor serving as a convolution's bias and as an Add's input; the
    QOperator quantizer then writes it once as an int32 bias and feeds that to QLinearAdd too (an invalid
    graph, seen with onnxruntime 1.32 on the tiny test model).
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    seen: dict[str, int] = {}
    copies = 0
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name not in inits:
                continue
            seen[name] = seen.get(name, 0) + 1
            arr = numpy_helper.to_array(inits[name])
            if seen[name] == 1 or arr.nbytes > max_bytes:
                continue
            new_name = f"{name}_copy{seen[name] - 1}"
            proto.graph.initializer.append(numpy_helper.from_array(arr, new_name))
            node.input[k] = new_name
            copies += 1
    return copies


def _graph(path_or_proto: Any) -> Any:
    import onnx

    return onnx.load(str(path_or_proto)) if isinstance(path_or_proto, (str, Path)) else path_or_proto


def exclusion_groups(model: Any) -> dict[str, list[str]]:
    """Node names of the float-candidate groups of a (pre-processed) fp32 graph, see ``EXCLUSION_GROUPS``.

    ``final_conv``: the node producing the heatmaps; ``first_conv``: the convolution on the image;
    ``attention``: the softmaxes with the products of two activations around them (Q K^T and attention x V)
    and the scalings of q and k: one group, because the quantizer's exclusion only stops a node from
    quantizing its own inputs, so a Softmax between quantized MatMuls, or a MatMul of re-quantized q and k,
    would still run int8 (see :func:`float_nodes`); ``encoder_matmul``: products with a weight matrix
    (projections and feed-forward);
    ``residual_add``: additions of two activations (residual connections, position embedding).
    """
    from .onnx_export import HEATMAPS_NAME, INPUT_NAME

    graph = _graph(model).graph
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    groups: dict[str, list[str]] = {g: [] for g in EXCLUSION_GROUPS}
    outputs = {o.name for o in graph.output}
    heat = HEATMAPS_NAME if HEATMAPS_NAME in outputs else graph.output[0].name
    node = producer.get(heat)
    while node is not None and node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
        node = next((producer[i] for i in node.input if i in producer), None)  # walk back over reshapes etc.
    if node is not None:
        groups["final_conv"].append(node.name)
    for n in graph.node:
        acts = [i for i in n.input if i and i not in consts]
        if n.op_type == "Conv" and INPUT_NAME in n.input:
            groups["first_conv"].append(n.name)
        elif n.op_type == "Softmax":
            groups["attention"].append(n.name)
        elif n.op_type == "MatMul":
            groups["attention" if len(acts) == 2 else "encoder_matmul"].append(n.name)
        elif n.op_type == "Add" and len(acts) == 2:
            groups["residual_add"].append(n.name)
    # the attention products only stay float when the scalings feeding them do not re-quantize their inputs
    for name in list(groups["attention"]):
        node = next(n for n in graph.node if n.name == name)
        if node.op_type != "MatMul":
            continue
        for tensor in node.input:
            p = producer.get(tensor)
            while p is not None and p.op_type in ("Reshape", "Transpose", "Squeeze", "Unsqueeze"):
                p = producer.get(p.input[0])
            if p is not None and p.op_type in ("Mul", "Div") and p.name not in groups["attention"]:
                groups["attention"].append(p.name)
    return groups


def quantize_onnx(
    model_path: str | Path,
    out_path: str | Path,
    crops: np.ndarray | CropSet,
    settings: QuantSettings = QuantSettings(),
    calibration_cache: str | Path | None = None,
    batch_size: int = 16,
) -> Path:
    """One ``quantize_static`` run of a (pre-processed) fp32 graph with ``settings``.

    ``calibration_cache`` (a JSON path) keeps the measured activation ranges: a second call with the same
    graph and method skips calibration, which is what makes the float-node search affordable.
    """
    from onnxruntime.quantization import QuantFormat, quantize_static

    images = crops.images if isinstance(crops, CropSet) else np.asarray(crops, np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise CalibrationDataRequired(CALIBRATION_HELP)
    graph = _graph(model_path)
    nodes = {n.name for n in graph.graph.node}
    unknown = [n for n in settings.exclude_nodes if n not in nodes]
    if unknown:
        raise ValueError(f"exclude_nodes names no node of {model_path}: {unknown[:5]}")
    exclude = list(settings.exclude_nodes)
    if settings.float_groups:
        groups = exclusion_groups(graph)
        exclude += [n for g in settings.float_groups for n in groups[g] if n not in exclude]
    exclude += [n.name for n in graph.graph.node if n.op_type in settings.exclude_op_types and n.name not in exclude]
    extra: dict[str, Any] = {}
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    # the calibrators hold every intermediate tensor of every crop until the end (the histogram ones took > 20 GB
    # for 512 R-A4 crops and were killed): feed them in slices; ranges merge and histograms accumulate across
    # slices. (Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 it drops the held batches without using them.)
    extra["CalibStridedMinMax"] = max(d for d in range(1, min(64, len(images)) + 1) if len(images) % d == 0)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # ``calibration_cache_path`` is recent (onnxruntime 1.32 has it); older versions calibrate on every call
    cache_option: dict[str, Any] = {}
    if calibration_cache is not None and "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        cache_option["calibration_cache_path"] = str(calibration_cache)
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT logs a warning per un-preprocessed graph / skipped tensor
    try:
        quantize_static(
            str(model_path), str(out_path), _as_reader(images, batch_size),
            quant_format=QuantFormat.QDQ if settings.format == "qdq" else QuantFormat.QOperator,
            per_channel=settings.per_channel, reduce_range=settings.reduce_range,
            activation_type=_ort_type(settings.activation_type), weight_type=_ort_type(settings.weight_type),
            nodes_to_exclude=exclude, calibrate_method=_ort_method(settings.method), extra_options=extra,
            **cache_option,
        )
    finally:
        logging.getLogger().setLevel(previous)
    if settings.float_softmax:
        import onnx

        proto = onnx.load(str(out_path))
        if float_softmax_inputs(proto):
            onnx.save(proto, str(out_path))
    return out_path


def float_softmax_inputs(proto: Any) -> int:
    """Remove the QuantizeLinear -> DequantizeLinear pair in front of every Softmax, so that ONNX Runtime runs
    the Softmax in float on the float output of its int8 Q K^T (MatMulIntegerToFloat) instead of fusing it into
    QLinearSoftmax; its output stays quantized for the int8 attention x V. Returns the Softmaxes changed."""
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    graph_outputs = {o.name for o in graph.output}
    changed = 0
    for node in list(graph.node):
        if node.op_type != "Softmax":
            continue
        dq = producer.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        qn = producer.get(dq.input[0])
        if qn is None or qn.op_type != "QuantizeLinear":
            continue
        node.input[0] = qn.input[0]
        changed += 1
        if readers.get(dq.output[0], 0) == 1 and dq.output[0] not in graph_outputs:
            graph.node.remove(dq)
            if readers.get(qn.output[0], 0) == 1 and qn.output[0] not in graph_outputs:
                graph.node.remove(qn)
    return changed


_FLOAT_COMPUTE = ("Conv", "FusedConv", "ConvTranspose", "MatMul", "FusedMatMul", "Gemm", "FusedGemm", "Softmax")


def runtime_graph(model_path: str | Path, level: str = "extended") -> Any:
    """The graph ONNX Runtime actually runs: ``model_path`` after its graph optimisations (``extended`` is the
    level that fuses DequantizeLinear -> op -> QuantizeLinear into QLinearConv / QLinearMatMul / ...)."""
    import onnx
    import onnxruntime as ort

    from .onnx_runtime import session_options

    with tempfile.TemporaryDirectory(prefix="tpose-ortopt-") as tmp:
        opts = session_options(1, optimization=level)
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def _compute_nodes(graph: Any) -> list[str]:
    """Names of the nodes that do arithmetic worth quantizing: Conv / ConvTranspose / MatMul / Gemm / Softmax
    and Add / Mul of two activations (a bias or scale read from a constant, even through DequantizeLinear, is not)."""
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    consts |= {o for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in consts for o in n.output}
    names = []
    for n in graph.node:
        if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm", "Softmax"):
            names.append(n.name)
        elif n.op_type in ("Add", "Mul") and not any(i in consts for i in n.input):
            names.append(n.name)
    return names


_INT8_KERNELS = ("QLinearConv", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "ConvInteger",
                 "QLinearAdd", "QLinearMul", "QLinearSoftmax", "QGemm", "QLinearConvTranspose")


def float_nodes(int8_path: str | Path) -> list[str]:
    """Compute nodes of a quantized graph (:func:`_compute_nodes` of the file) that ONNX Runtime runs in float.

    Read off the optimised graph (:func:`runtime_graph`), where each int8 kernel keeps the name of the node it
    replaced: a node without one is float. The file alone does not tell: the quantizer's exclusion only stops
    a node from quantizing its own inputs, so an excluded Softmax between quantized MatMuls still becomes
    QLinearSoftmax, while a node wrapped in Q/DQ still runs in float on int8-rounded inputs where ONNX Runtime
    has no int8 kernel for it (ConvTranspose) or declines the fusion (the 3-channel first convolution here).
    """
    graph = _graph(int8_path).graph
    int8 = {n.name for n in runtime_graph(int8_path).graph.node if n.op_type in _INT8_KERNELS}
    if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        int8 |= {n.name for n in graph.node if n.op_type in _INT8_KERNELS}
    return [name for name in _compute_nodes(graph) if name not in int8]


# ------------------------------------------------------------------------------------------------ search


def node_errors(
    fp32_path: str | Path, int8_path: str | Path, crops: np.ndarray, threads: int | None = None
) -> dict[str, float]:
    """Relative output error ``||int8 - fp32|| / ||fp32||`` of every quantized compute node on ``crops``.

    Both graphs are run unoptimised with each node's output added as a graph output (QDQ keeps the float
    graph's tensor names), so the error of each tensor is seen where it arises. The search uses the rise
    of this error over a node's inputs to pick single nodes to keep in float once the groups are spent.
    """
    import onnx
    import onnxruntime as ort

    from .onnx_runtime import session_options

    fp = _graph(fp32_path)
    q = _graph(int8_path)
    q_outputs = {o for n in q.graph.node for o in n.output}
    kinds = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Softmax", "Add", "LayerNormalization")
    wanted = [(n.name, n.output[0]) for n in fp.graph.node if n.op_type in kinds and n.output[0] in q_outputs]
    results = {}
    for tag, proto in (("fp32", fp), ("int8", q)):
        model = copy.deepcopy(proto)
        have = {o.name for o in model.graph.output}
        for _, tensor in wanted:
            if tensor not in have:
                model.graph.output.append(onnx.ValueInfoProto(name=tensor))
        opts = session_options(threads, optimization="disable")
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [t for _, t in wanted]
        results[tag] = sess.run(names, {sess.get_inputs()[0].name: np.ascontiguousarray(crops, np.float32)})
    out = {}
    for (node, _), a, b in zip(wanted, results["fp32"], results["int8"], strict=True):
        denom = float(np.linalg.norm(a)) or 1.0
        out[node] = float(np.linalg.norm(np.asarray(b, np.float64) - a) / denom)
    return out


def _error_rise(fp32_path: str | Path, errors: Mapping[str, float]) -> list[tuple[str, float]]:
    """Nodes by how much error they add over the worst of the nodes feeding them (largest first)."""
    graph = _graph(fp32_path).graph
    producer = {o: n for n in graph.node for o in n.output}

    def upstream(node: Any, seen: set[str]) -> float:
        worst = 0.0
        for i in node.input:
            p = producer.get(i)
            if p is None or p.name in seen:
                continue
            seen.add(p.name)
            worst = max(worst, errors[p.name] if p.name in errors else upstream(p, seen))
        return worst

    rise = [(n.name, errors[n.name] - upstream(n, set())) for n in graph.node if n.name in errors]
    return sorted(rise, key=lambda t: -t[1])


@dataclass
class SearchStep:
    """One try of the search: what was kept in float and what it measured."""

    kept_float: list[str]
    added: str
    pck_int8: dict[str, float]
    worst_loss: float
    passed: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_float_nodes(
    model_path: str | Path,
    out_path: str | Path,
    crops: np.ndarray,
    validation: Sequence[ValidationSet],
    settings: QuantSettings,
    fp32_pck: Mapping[str, float],
    tolerance: float = DEFAULT_TOLERANCE,
    groups: Sequence[str] = EXCLUSION_GROUPS,
    max_single_nodes: int = 16,
    prune: bool = True,
    calibration_cache: str | Path | None = None,
    threads: int | None = None,
    progress: Any = None,
) -> tuple[QuantSettings, AccuracyGate, list[SearchStep]]:
    """Quantize, measure, and keep more nodes in float until every validation set loses at most ``tolerance``.

    Order: everything quantized; then the ``groups`` of :func:`exclusion_groups` one after another
    (cumulative); then single nodes by the output error they add (:func:`node_errors`), doubling the
    number kept float each step up to ``max_single_nodes``. With ``prune``, groups added before the one that
    passed are re-quantized one at a time where the gate still passes. ``out_path`` ends with the chosen
    graph. The gate is met or the last (most float) try is returned with ``passed`` False.
    """
    say = progress or (lambda _msg: None)
    available = exclusion_groups(model_path)
    unknown = [g for g in groups if g not in available]
    if unknown:
        raise ValueError(f"unknown exclusion groups {unknown}; known: {list(available)}")
    steps: list[SearchStep] = []

    def attempt(exclude: Sequence[str], added: str) -> AccuracyGate:
        t0 = time.perf_counter()
        trial = replace(settings, exclude_nodes=tuple(dict.fromkeys([*settings.exclude_nodes, *exclude])))
        quantize_onnx(model_path, out_path, crops, trial, calibration_cache)
        got = measure_pck(out_path, validation, threads)
        gate = AccuracyGate(dict(fp32_pck), got, {v.name: v.num_persons for v in validation}, tolerance)
        steps.append(SearchStep(list(trial.exclude_nodes), added, got, gate.worst_loss, gate.passed,
                                round(time.perf_counter() - t0, 1)))
        say(f"  float: {added or 'none'} -> worst loss {gate.worst_loss:+.4f} ({'pass' if gate.passed else 'fail'})")
        return gate

    kept: list[str] = list(dict.fromkeys(n for g in settings.float_groups for n in available[g]))
    settings = replace(settings, float_groups=())  # now listed in ``kept``, so that the report names them
    added_groups: list[str] = []
    gate = attempt(kept, "")
    for group in groups:
        if gate.passed:
            break
        nodes = [n for n in available[group] if n not in kept]
        if not nodes:
            continue
        kept += nodes
        added_groups.append(group)
        gate = attempt(kept, f"group {group}")
    count = 1
    while not gate.passed and count <= max_single_nodes:
        rise = [n for n, _ in _error_rise(model_path, node_errors(model_path, out_path, crops[:16], threads))
                if n not in kept]
        if not rise:
            break
        chosen = rise[:count]
        kept += chosen
        gate = attempt(kept, "nodes " + ", ".join(chosen))
        count *= 2
    if gate.passed and prune and len(added_groups) > 1:
        for group in added_groups[:-1]:
            trial = [n for n in kept if n not in available[group]]
            trial_gate = attempt(trial, f"re-quantize group {group}")
            if trial_gate.passed:
                kept, gate = trial, trial_gate
    final = replace(settings, exclude_nodes=tuple(dict.fromkeys([*settings.exclude_nodes, *kept])))
    if steps[-1].kept_float != list(final.exclude_nodes):  # the last try was a failed prune: rebuild the chosen one
        quantize_onnx(model_path, out_path, crops, final, calibration_cache)
    return final, gate, steps


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

    from ..bench.common import _cpu_model, cpu_features

    return {"cpu": _cpu_model(), "cpu_flags": cpu_features(), "onnxruntime": onnxruntime.__version__}


def write_metadata(fp32_path: str | Path, int8_path: str | Path, quantization: Mapping[str, Any]) -> None:
    """Copy the fp32 file's metadata into the int8 file and add ``precision`` and ``quantization`` to the
    ``tpose`` JSON, so a loader (``OnnxPoseModel(...).metadata``) can tell an int8 graph and how it was made."""
    import onnx

    src = _graph(fp32_path)
    props = {p.key: p.value for p in src.metadata_props}
    info = json.loads(props.get("tpose", "{}") or "{}")
    info["precision"] = "int8"
    info["quantization"] = dict(quantization)
    props["tpose"] = json.dumps(info, default=str)
    proto = onnx.load(str(int8_path))
    kept = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "tpose"
    onnx.save(proto, str(int8_path))


def _input_size(fp32_path: str | Path) -> tuple[int, int]:
    graph = _graph(fp32_path).graph
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
    calibration_count: int = DEFAULT_CALIBRATION_COUNT,
    settings: QuantSettings | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    search: bool = True,
    groups: Sequence[str] = EXCLUSION_GROUPS,
    threads: int | None = None,
    seed: int = 0,
    progress: Any = None,
) -> QuantizationReport:
    """fp32 tpose ONNX -> int8 ONNX at ``out_path`` (default ``<stem>_int8.onnx`` beside it), gated by PCK.

    ``calibration``: training persons (a data set spec or list of specs, records, a folder or image files
    with optional ``boxes``, or crops [N, 3, H, W]); ``calibration_count`` of them are drawn. Without it
    :class:`CalibrationDataRequired` is raised. ``validation``: data set specs whose persons measure PCK@0.2
    (12 limb joints, flip test) of the fp32 and the int8 graph; with ``search`` the nodes whose quantization
    costs more than ``tolerance`` are kept in float (:func:`search_float_nodes`). Without validation the
    file is written unmeasured (the report says so). ``settings`` default: QDQ, per-channel, u8 activations
    x s8 weights, MinMax, the attention Softmax in float (measured best here, ``benchmarks/results/int8.md``).
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    fp32_onnx = Path(fp32_onnx)
    if not fp32_onnx.is_file():
        raise FileNotFoundError(f"{fp32_onnx}: no such ONNX file")
    if calibration is None:
        raise CalibrationDataRequired(CALIBRATION_HELP)
    settings = settings or QuantSettings()
    out = Path(out_path) if out_path is not None else fp32_onnx.with_name(f"{fp32_onnx.stem}_int8.onnx")
    if out.resolve() == fp32_onnx.resolve():
        raise ValueError(f"the int8 output must not overwrite its fp32 input {fp32_onnx}")
    size = _input_size(fp32_onnx)
    crops = calibration_crops(calibration, size, calibration_count, seed=seed, boxes=boxes)
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
            if search:
                settings, gate, steps = search_float_nodes(pre, out, crops.images, sets, settings, fp32_pck,
                                                           tolerance, groups, calibration_cache=cache,
                                                           threads=threads, progress=say)
            else:
                quantize_onnx(pre, out, crops, settings, cache)
                gate = AccuracyGate(fp32_pck, measure_pck(out, sets, threads), {s.name: s.num_persons for s in sets},
                                    tolerance)
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


# --------------------------------------------------------------------------------------- command line


def _fp32_file(model: str, folder: Path, attention: bool) -> Path:
    """An ``.onnx`` path as it is; a weights file or registry name exported (fp32, opset 17) into ``folder``."""
    if model.endswith(".onnx"):
        return Path(model)
    from ..inference.predictor import _build_torch_model
    from .onnx_export import export_onnx

    net, kset = _build_torch_model(model, None)
    tail = "_attention" if attention else ""
    return export_onnx(net.eval(), folder / f"{Path(model).stem}{tail}.onnx", attention=attention, keypoint_set=kset)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tpose.export.quantize MODEL --data DATA.yaml [--out F] [--report F.json]``."""
    import argparse

    from ..engine.config import read_yaml

    p = argparse.ArgumentParser(description="static int8 quantization of a tpose ONNX file, gated by PCK@0.2")
    p.add_argument("model", help="fp32 .onnx file, or a weights file / registry name to export first")
    p.add_argument("--data", required=True, help="YAML with calibration:, validation: (data set specs), "
                   "optional calibration_count: and tolerance: (see configs/int8_r_a4_128x96.yaml)")
    p.add_argument("--out", default=None, help="int8 .onnx (default <stem>_int8.onnx beside the fp32 file)")
    p.add_argument("--attention", action="store_true", help="export with attention outputs (weights input only)")
    p.add_argument("--report", default=None, help="write the report as JSON here")
    p.add_argument("--no-search", action="store_true", help="measure, but keep nothing in float")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    data = read_yaml(Path(args.data).read_text()) or {}
    out = Path(args.out) if args.out else None
    folder = out.parent if out is not None else Path()
    fp32 = _fp32_file(args.model, folder, args.attention)
    report = quantize_model(
        fp32, out, calibration=data.get("calibration"), validation=data.get("validation"),
        calibration_count=int(data.get("calibration_count", DEFAULT_CALIBRATION_COUNT)),
        tolerance=float(data.get("tolerance", DEFAULT_TOLERANCE)), search=not args.no_search,
        threads=args.threads, progress=print,
    )
    print(report.summary())
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    return 0 if report.passed in (True, None) else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
