"""``tpose eval``: evaluate weights on LSPET or COCO-format data, with GT or detector boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from ..data import LIMB_JOINTS, TopDownDataset, get_keypoint_set
from ..data.keypoint_sets import default_keypoint_set, keypoint_set_from_metadata
from ..models.checkpoint import load_model
from .evaluate import evaluate


def run_eval(
    weights: str | Path,
    data: str = "lspet",
    root: str | Path | None = None,
    first: int = 9001,
    last: int = 10000,
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
) -> dict[str, Any]:
    """Measure ``weights`` (a tpose ``.safetensors`` with its JSON) and return the report as a dict.

    ``data="lspet"`` reads ``root``/joints.mat images ``first``..``last`` with boxes from the annotated
    joints (PCK@0.2 by default); ``data="coco"`` reads ``ann_file``/``image_dir`` (COCO AP by default for
    17-keypoint models, PCK otherwise), with ground-truth boxes, or the person boxes of ``detections``.
    """
    model = load_model(weights)
    model_set = keypoint_set_from_metadata(getattr(model, "metadata", None)) or default_keypoint_set(
        model.config.num_keypoints
    )
    size = tuple(input_size) if input_size else model.config.image_size
    boxes = "gt"
    coco_gt = None
    if data == "lspet":
        from ..data.lspet import load_lspet_records

        if root is None:
            raise ValueError("tpose eval --data lspet needs --root (the folder with joints.mat and images/)")
        data_set = get_keypoint_set("lsp14")
        records = load_lspet_records(root, first, last)
    elif data == "coco":
        from ..data.coco import load_coco, load_coco_records

        if ann_file is None or image_dir is None:
            raise ValueError("tpose eval --data coco needs --ann-file and --image-dir")
        data_set = get_keypoint_set("coco17")
        if detections:
            from ..data.detections import load_detection_records

            records = load_detection_records(detections, image_dir, ann_file, data_set.num_keypoints, min_box_score)
            boxes = "detector"
        else:
            records, _ = load_coco_records(ann_file, image_dir, data_set)
        coco_gt = load_coco(ann_file)
    else:
        raise ValueError(f"unknown --data {data!r}: use lspet or coco")
    if metric is None:
        metric = "coco" if data == "coco" and model_set.num_keypoints == data_set.num_keypoints else "pck"
    if metric == "pck" and boxes == "detector":
        raise ValueError("PCK needs ground-truth boxes (one annotated person per crop); use --metric coco")
    ds = TopDownDataset(records, data_set, size, train=False)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    report = evaluate(
        model, loader, model_set, data_keypoint_set=data_set, flip_test=flip_test, decode=decode, device=device,
        boxes=boxes, metrics=(metric,), joint_subset=list(LIMB_JOINTS) if limbs_only else None, coco_gt=coco_gt,
        results_path=results, progress=progress,
    )
    out = report.to_dict()
    out.update({"weights": str(weights), "data": data, "input_size": list(size), "summary": report.summary()})
    if report_json:
        Path(report_json).parent.mkdir(parents=True, exist_ok=True)
        Path(report_json).write_text(json.dumps(out, indent=2, default=str))
    return out
