"""``tpose eval``: evaluate weights on LSPET or COCO-format data, with GT or detector boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..data import LIMB_JOINTS, TopDownDataset
from ..data.coco import coco_keypoint_set, load_coco
from ..data.detections import load_detection_records
from ..data.lspet import VAL_RANGE
from ..data.mixture import build_part
from ..factory import load_pose_model
from .evaluate import evaluate


def run_eval(
    weights: str | Path | None = None,
    data: str = "lspet",
    root: str | Path | None = None,
    first: int | None = None,
    last: int | None = None,
    image_ids: str | Path | list[int] | None = None,
    ann_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    detections: str | Path | None = None,
    min_box_score: float = 0.0,
    metric: str | None = None,
    limbs_only: bool = False,
    flip_test: bool = True,
    decode: str = "dark",
    input_size: tuple[int, int] | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    results: str | Path | None = None,
    report_json: str | Path | None = None,
    progress: bool = True,
    backend: str | None = None,
    keypoint_set: str | Path | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Measure ``weights`` (a tag, a weights file or an ``.onnx`` export; default: the shipped weights) and
    return the report as a dict.

    ``data="lspet"`` (or ``"lsp"``) reads ``root``/joints.mat images ``first``..``last`` (default for LSPET:
    its validation part, 9001..10000) with boxes from the annotated joints (PCK@0.2 by default);
    ``data="coco"`` reads any COCO-format file ``ann_file``/``image_dir`` with its own keypoint set (COCO AP
    by default when the model predicts every keypoint of the file, PCK otherwise), with ground-truth boxes,
    or the person boxes of ``detections``. ``image_ids`` (a list or a text file) keeps only those images.
    Joints are scored by name, so an LSP-14 model is measured on MPII or COCO data over the joints they share.
    """
    loaded = load_pose_model(weights, backend=backend, device=device, input_size=input_size,
                             keypoint_set=keypoint_set)
    model, model_set, size = loaded.model, loaded.keypoint_set, loaded.input_size
    boxes = "gt"
    coco_gt = None
    spec = eval_data_spec(data, root, first, last, image_ids, ann_file, image_dir)
    if detections:
        if data != "coco":
            raise ValueError("--detections needs --data coco (detector boxes are matched to COCO image ids)")
        data_set = coco_keypoint_set(ann_file)
        records = load_detection_records(detections, image_dir, ann_file, data_set.num_keypoints, min_box_score)
        boxes = "detector"
    else:
        part = build_part(spec)  # the data set's own keypoint set: PCK scores joints it really has
        records, data_set = part.records, part.keypoint_set
    if data == "coco":
        coco_gt = load_coco(ann_file)
    if metric is None:
        predicts_all = set(data_set.names) <= set(model_set.names)
        metric = "coco" if data == "coco" and predicts_all else "pck"
    if metric == "pck" and boxes == "detector":
        raise ValueError("PCK needs ground-truth boxes (one annotated person per crop); use --metric coco")
    ds = TopDownDataset(records, data_set, size, train=False)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    report = evaluate(
        model, loader, model_set, data_keypoint_set=data_set, flip_test=flip_test, decode=decode, device=device,
        boxes=boxes, metrics=(metric,), joint_subset=list(LIMB_JOINTS) if limbs_only else None, coco_gt=coco_gt,
        results_path=results, progress=progress,
        amp_dtype=torch.bfloat16 if precision == "bf16" else None,
    )
    out = report.to_dict()
    out.update({"weights": loaded.weights, "data": data, "input_size": list(size), "precision": precision,
                "summary": report.summary()})
    if report_json:
        Path(report_json).parent.mkdir(parents=True, exist_ok=True)
        Path(report_json).write_text(json.dumps(out, indent=2, default=str))
    return out


def eval_data_spec(
    data: str = "lspet",
    root: str | Path | None = None,
    first: int | None = None,
    last: int | None = None,
    image_ids: str | Path | list[int] | None = None,
    ann_file: str | Path | None = None,
    image_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The data-part spec (as in a training config) of ``tpose eval``'s data flags; LSPET defaults to its
    validation part."""
    if data in ("lspet", "lsp"):
        if root is None:
            raise ValueError(f"tpose eval --data {data} needs --root (the folder with joints.mat and images/)")
        if data == "lspet":  # its validation part unless told otherwise
            first, last = first or VAL_RANGE[0], last or VAL_RANGE[1]
        spec: dict[str, Any] = {"type": data, "root": root, "first": first, "last": last}
    elif data == "coco":
        if ann_file is None or image_dir is None:
            raise ValueError("tpose eval --data coco needs --ann-file and --image-dir")
        spec = {"type": "coco", "ann_file": ann_file, "image_dir": image_dir}
    else:
        raise ValueError(f"unknown --data {data!r}: use lspet, lsp or coco")
    spec["image_ids"] = image_ids
    return spec
