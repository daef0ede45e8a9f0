"""``tpose eval``: evaluate weights on LSPET or COCO-format data, with GT or detector boxes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from ..data import TopDownDataset
from ..data.coco import coco_keypoint_set, load_coco
from ..data.cutoff import CUT_LEVELS, cut_records
from ..data.detections import load_detection_records
from ..data.mixture import build_part
from ..factory import load_pose_model
from .evaluate import evaluate
from .options import EvalDataSpec, EvalOptions


def run_eval(
    weights: str | Path | None = None,
    data: EvalDataSpec | None = None,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Measure ``weights`` (a tag, a weights file or an ``.onnx`` export; default: the shipped weights) and
    return the report as a dict.

    ``data`` (see :class:`EvalDataSpec`; default LSPET's validation part, which needs a root): LSPET/LSP with
    boxes from the annotated joints (PCK@0.2 by default), or any COCO-format file with its own keypoint set
    (COCO AP by default when the model predicts every keypoint of the file, PCK otherwise), with ground-truth
    boxes or the person boxes of ``options.detections``. Joints are scored by name, so an LSP-14 model is
    measured on MPII or COCO data over the joints they share.
    """
    data = data or EvalDataSpec()
    options = options or EvalOptions()
    settings = options.settings
    loaded = load_pose_model(weights, backend=options.backend, device=options.device, input_size=options.input_size,
                             keypoint_set=options.keypoint_set)
    model, model_set, size = loaded.model, loaded.keypoint_set, loaded.input_size
    spec = data.part_spec()
    boxes = "gt"
    if options.detections:
        if data.data != "coco":
            raise ValueError("--detections needs --data coco (detector boxes are matched to COCO image ids)")
        data_set = coco_keypoint_set(data.ann_file)
        records = load_detection_records(options.detections, data.image_dir, data.ann_file, data_set.num_keypoints,
                                         options.min_box_score)
        boxes = "detector"
    else:
        part = build_part(spec)  # the data set's own keypoint set: PCK scores joints it really has
        records, data_set = part.records, part.keypoint_set
    cut = None
    if data.cut_at is not None:
        if boxes == "detector":
            raise ValueError("--cut-at cuts the annotated persons' photos: it needs ground-truth boxes "
                             "(leave out --detections)")
        total = len(records)
        records = cut_records(records, data_set, CUT_LEVELS[data.cut_at])
        if data.cut_keep_pixels:
            records = [replace(r, image_bottom=None) for r in records]
        cut = {"at": data.cut_at, "level": CUT_LEVELS[data.cut_at], "pixels below kept": data.cut_keep_pixels,
               "persons": total,
               "not upright or no torso (skipped)": total - len(records)}
        if not records:
            raise ValueError(f"--cut-at {data.cut_at}: none of the {total} persons has a labelled shoulder and hip "
                             "with the hips below the shoulders; nothing to evaluate")
    coco_gt = load_coco(data.ann_file) if data.data == "coco" else None
    metric = options.metric
    if metric is None:
        predicts_all = set(data_set.names) <= set(model_set.names)
        metric = "coco" if data.data == "coco" and predicts_all else "pck"
    if metric == "pck" and boxes == "detector":
        raise ValueError("PCK needs ground-truth boxes (one annotated person per crop); use --metric coco")
    loader = DataLoader(TopDownDataset(records, data_set, size, train=False), batch_size=options.batch_size,
                        shuffle=False, num_workers=0)
    report = evaluate(model, loader, model_set, settings, data_keypoint_set=data_set, device=options.device,
                      boxes=boxes, metrics=(metric,), coco_gt=coco_gt, results_path=options.results,
                      progress=options.progress)
    out = report.to_dict()
    out.update({"weights": loaded.weights, "data": data.data, "input_size": list(size),
                "precision": settings.precision, "summary": report.summary()})
    if cut is not None:
        out["cut"] = cut
        what = "boxes and joints cut" if data.cut_keep_pixels else "photos cut"
        out["summary"] += (f" ({what} at the {cut['at']}: {len(records)} of {cut['persons']} persons, "
                           f"{cut['not upright or no torso (skipped)']} not upright or without a labelled torso)")
    write_report(out, options.report_json)
    return out


def write_report(report: dict[str, Any], path: str | Path | None) -> None:
    """The report as JSON at ``path`` (nothing without one)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2, default=str))
