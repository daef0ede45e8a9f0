"""Accuracy is the gate: PCK@0.2 of the fp32 and the int8 graph on validation persons the caller names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...data.dataset import TopDownDataset
from ...data.keypoint_sets import LIMB_JOINTS
from ...data.mixture import build_part
from ...engine.evaluate import evaluate
from ...engine.options import EvalSettings
from ...models.onnx_model import OnnxPoseModel
from .calibration import is_spec, spec_label
from .settings import DEFAULT_TOLERANCE

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
    input_size: Sequence[int],
    name: str | None = None,
    batch_size: int = 32,
    limit: int | None = None,
) -> list[ValidationSet]:
    """One :class:`ValidationSet` per data set named in ``source`` (a spec, a list of specs, or sets already
    loaded). Each keeps its own keypoint set (PCK is scored by joint name) and its annotated-joint boxes."""
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
        if not is_spec(item):
            raise TypeError("validation data must be data set specs ({'type': 'lspet', ...}), "
                            f"got {type(item).__name__}")
        part = build_part(item)
        records = part.records[:limit] if limit else part.records
        ds = TopDownDataset(records, part.keypoint_set, tuple(int(v) for v in input_size), train=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        batches = [dict(b) for b in loader]
        out.append(ValidationSet(name=name or spec_label(item), keypoint_set=part.keypoint_set, batches=batches,
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
    net = OnnxPoseModel(model, threads=threads) if isinstance(model, (str, Path)) else model
    out = {}
    for vs in validation:
        settings = EvalSettings(flip_test=flip_test, joint_subset=LIMB_JOINTS, pck_threshold=threshold)
        report = evaluate(net, vs.batches, net.keypoint_set, settings, data_keypoint_set=vs.keypoint_set,
                          metrics=("pck",), progress=False)
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
    input_size: Sequence[int] | None = None,
) -> AccuracyGate:
    """Measure PCK@0.2 of ``int8`` against ``fp32`` on ``validation`` (specs or loaded sets); the gate the
    search and :func:`quantize_model` apply. ``fp32_pck`` skips re-measuring the fp32 graph."""
    if input_size is None:
        input_size = OnnxPoseModel(fp32 if isinstance(fp32, (str, Path)) else int8, threads=1).input_size
    sets = load_validation(validation, input_size)
    ref = dict(fp32_pck) if fp32_pck is not None else measure_pck(fp32, sets, threads)
    got = measure_pck(int8, sets, threads)
    return AccuracyGate(pck_fp32=ref, pck_int8=got, persons={s.name: s.num_persons for s in sets},
                        tolerance=float(tolerance))
