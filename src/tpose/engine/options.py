"""The options of evaluation as typed objects: ``tpose eval`` builds them once and hands them down.

:class:`EvalDataSpec` is the one home of the data flags (``--data --root --first --last --image-ids
--ann-file --image-dir``) that ``run_eval``, ``run_detected_eval`` and the scripts share; :class:`EvalSettings`
is how :func:`~tpose.engine.evaluate.evaluate` turns heatmaps into scores; :class:`EvalOptions` the rest of
``tpose eval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.cutoff import CUT_LEVELS
from ..data.lspet import VAL_RANGE

EVAL_DATA = ("lspet", "lsp", "coco")
EVAL_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # precision -> autocast dtype (None: none)


@dataclass(frozen=True)
class EvalDataSpec:
    """Which annotated persons to evaluate on: LSPET/LSP (``root`` with joints.mat and images/, image numbers
    ``first``..``last``; LSPET defaults to its validation part) or any COCO-format file (``ann_file``,
    ``image_dir``); ``image_ids`` (a list or a text file of ids) keeps only those images. ``cut_at``
    (``chest`` or ``hips``, see ``tpose.data.cutoff``) ends every upright person's photo at that height, to
    measure persons cut off by the image's lower edge, as everyday photos often show them; with
    ``cut_keep_pixels`` the boxes and scored joints are those of the cut but the pixels below stay (the
    control that tells what the missing pixels cost from what the smaller set of joints does)."""

    data: str = "lspet"
    root: str | Path | None = None
    first: int | None = None
    last: int | None = None
    image_ids: str | Path | list[int] | None = None
    ann_file: str | Path | None = None
    image_dir: str | Path | None = None
    cut_at: str | None = None
    cut_keep_pixels: bool = False

    def __post_init__(self) -> None:
        if self.cut_at is not None and self.cut_at not in CUT_LEVELS:
            raise ValueError(f"--cut-at {self.cut_at!r}: use one of {', '.join(CUT_LEVELS)}")
        if self.cut_keep_pixels and self.cut_at is None:
            raise ValueError("--cut-keep-pixels is the control of --cut-at: give --cut-at chest or hips too")

    def part_spec(self) -> dict[str, Any]:
        """The data-part spec of a training config (see ``tpose.data.mixture.build_part``), checked."""
        if self.data in ("lspet", "lsp"):
            if self.root is None:
                raise ValueError(f"tpose eval --data {self.data} needs --root (the folder with joints.mat and images/)")
            first, last = self.first, self.last
            if self.data == "lspet":  # its validation part unless told otherwise
                first, last = first or VAL_RANGE[0], last or VAL_RANGE[1]
            if first is not None and last is not None and first > last:
                raise ValueError(f"--first {first} comes after --last {last}: give the range low to high, "
                                 f"e.g. --first {last} --last {first}")
            if (first is not None and first < 1) or (last is not None and last < 1):
                raise ValueError(f"--first/--last are image numbers from 1, got {first}..{last}")
            spec: dict[str, Any] = {"type": self.data, "root": self.root, "first": first, "last": last}
        elif self.data == "coco":
            if self.ann_file is None or self.image_dir is None:
                raise ValueError("tpose eval --data coco needs --ann-file and --image-dir")
            spec = {"type": "coco", "ann_file": self.ann_file, "image_dir": self.image_dir}
        else:
            raise ValueError(f"unknown --data {self.data!r}: use {', '.join(EVAL_DATA)}")
        spec["image_ids"] = self.image_ids
        return spec

    @property
    def gt_box_scale(self) -> float:
        """How much a box around the annotated joints is enlarged to match a detector's (LSP's are tight)."""
        return 1.2 if self.data in ("lspet", "lsp") else 1.0


@dataclass(frozen=True)
class EvalSettings:
    """How heatmaps become scored keypoints: flip test, decoding, precision, and what PCK counts.

    ``joint_subset`` limits PCK to those joint names (e.g. ``LIMB_JOINTS``); ``rescore_threshold`` and
    ``nms_threshold`` are the released COCO evaluation's person rescoring and OKS-NMS.
    """

    flip_test: bool = True
    decode: str = "dark"
    precision: str = "fp32"  # "bf16": the forward pass under bf16 autocast
    blur_kernel: int = 11  # DARK's Gaussian
    joint_subset: Sequence[str] | None = None
    pck_threshold: float = 0.2
    rescore_threshold: float = 0.2
    nms_threshold: float = 0.9

    def __post_init__(self) -> None:
        if self.precision not in EVAL_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(EVAL_PRECISIONS)}, got {self.precision!r}")

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return EVAL_PRECISIONS[self.precision]


@dataclass(frozen=True)
class EvalOptions:
    """Everything ``tpose eval`` is told besides the weights and the data.

    ``detections`` (a COCO detection-results file, boxes scoring at least ``min_box_score``) replaces the
    ground-truth boxes; ``metric`` None picks COCO AP on COCO data the model fully predicts, else PCK.
    ``results`` and ``report_json`` name the COCO results and the report files to write.
    """

    settings: EvalSettings = field(default_factory=EvalSettings)
    metric: str | None = None
    detections: str | Path | None = None
    min_box_score: float = 0.0
    device: str = "cpu"
    backend: str | None = None
    input_size: tuple[int, int] | None = None
    keypoint_set: str | Path | None = None
    batch_size: int = 32
    results: str | Path | None = None
    report_json: str | Path | None = None
    progress: bool = True
