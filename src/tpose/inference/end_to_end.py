"""PCK with the boxes a user really gets: the predictor finds the people, and we score what it found.

GT-box PCK measures the pose network alone. Here each image goes through the whole predictor (detector,
crops, poses, OKS-NMS); its persons are matched to the annotated ones greedily by box score at
IoU >= 0.5, a matched person is scored with PCK@0.2 as with GT boxes (same normaliser: the box of the
annotated person's visible joints), and an annotated person that no detection matched scores 0 on
every joint. So the number falls both with worse poses and with missed people.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.keypoint_sets import KeypointSet
from ..data.mixture import build_part
from ..data.records import VISIBLE, PersonRecord
from ..engine.eval_run import write_report
from ..engine.metrics import joint_box_size, pck
from ..engine.options import EvalDataSpec, EvalOptions
from ..utils.boxes import box_iou, enlarge_box
from .options import DetectorOptions, PredictorOptions
from .predictor import PersonPose, PosePredictor

IOU_THRESHOLD = 0.5


def match_by_score(found_boxes: np.ndarray, found_scores: np.ndarray, targets: np.ndarray,
                   iou_threshold: float = IOU_THRESHOLD) -> dict[int, int]:
    """Greedy matching, most confident detection first: each takes the free target it overlaps most if that
    IoU is >= ``iou_threshold``. Returns {target index: detection index}."""
    iou = box_iou(found_boxes, targets)
    matched: dict[int, int] = {}
    for d in np.argsort(-np.asarray(found_scores, dtype=np.float64), kind="stable"):
        if not iou.shape[1]:
            break
        overlap = iou[d].copy()
        overlap[list(matched)] = -1.0
        best = int(np.argmax(overlap))
        if overlap[best] >= iou_threshold:
            matched[best] = int(d)
    return matched


@dataclass
class DetectedReport:
    """End-to-end PCK (unmatched persons count 0), the share of annotated persons found, and the PCK of the
    found ones alone, so that detector misses and pose errors can be told apart."""

    pck: float
    matched_pck: float
    recall: float
    num_persons: int
    num_matched: int
    num_images: int
    detections_per_image: float
    per_joint_pck: dict[str, float]
    pck_threshold: float
    iou_threshold: float
    gt_box_scale: float
    seconds: float
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.num_persons} annotated persons in {self.num_images} images, boxes from the predictor "
            f"({self.detections_per_image:.2f} persons found per image), matched at IoU >= {self.iou_threshold:g}",
            f"end-to-end PCK@{self.pck_threshold:g} = {self.pck:.4f} (an unmatched person scores 0)",
            f"found {self.num_matched} of {self.num_persons} persons (recall {self.recall:.3f}); "
            f"PCK@{self.pck_threshold:g} of the found ones = {self.matched_pck:.4f}",
        ]
        cells = [f"{n} {v:.3f}" if np.isfinite(v) else f"{n} -" for n, v in self.per_joint_pck.items()]
        lines.extend("  " + "  ".join(cells[i : i + 4]) for i in range(0, len(cells), 4))
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} image(s): " + "; ".join(self.skipped[:5]))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": {f"PCK@{self.pck_threshold:g}": self.pck,
                        f"PCK@{self.pck_threshold:g} of matched": self.matched_pck, "recall": self.recall},
            "boxes": "predictor (detector) boxes matched to annotated persons",
            "num_persons": self.num_persons, "num_matched": self.num_matched, "num_images": self.num_images,
            "detections_per_image": self.detections_per_image, "per_joint_pck": self.per_joint_pck,
            "iou_threshold": self.iou_threshold, "gt_box_scale": self.gt_box_scale, "seconds": self.seconds,
            "skipped": self.skipped,
        }


def evaluate_detected(
    predictor: PosePredictor,
    records: Sequence[PersonRecord],
    data_set: KeypointSet,
    *,
    joint_subset: Sequence[str] | None = None,
    pck_threshold: float = 0.2,
    iou_threshold: float = IOU_THRESHOLD,
    gt_box_scale: float = 1.0,
    boxes: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    progress: bool = True,
) -> DetectedReport:
    """Run ``predictor`` on every image of ``records`` (annotated persons, ``data_set`` keypoints) and score it.

    ``gt_box_scale`` enlarges the annotated boxes before matching (1.2 for LSP/LSPET, whose boxes are the
    tight box of the visible joints, while detectors draw the whole person). ``boxes`` maps an image path to
    (boxes [N, 4], scores [N]) to score given boxes (e.g. a detections file) instead of the detector.
    ``joint_subset`` limits PCK to those joint names (e.g. the 12 limb joints); joints are matched by name.
    """
    model_names = list(predictor.keypoint_set.names)
    names = [n for n in data_set.names if n in model_names and (joint_subset is None or n in joint_subset)]
    if not names:
        raise ValueError(f"the model ({model_names}) and the data ({list(data_set.names)}) share no joint to score")
    d_idx = [data_set.names.index(n) for n in names]
    m_idx = [model_names.index(n) for n in names]
    by_image: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_image.setdefault(rec.image_path, []).append(i)
    n = len(records)
    pred = np.full((n, len(names), 2), np.nan)  # NaN never counts as correct: unmatched persons score 0
    found = np.zeros(n, bool)
    detections, skipped = 0, []
    t0 = time.perf_counter()
    for path, idx in tqdm(by_image.items(), desc="images", disable=not progress, leave=False):
        try:
            if boxes is None:
                persons: list[PersonPose] = predictor.predict(path)
            else:
                b, s = boxes.get(path, (np.zeros((0, 4)), np.zeros(0)))
                persons = predictor.predict(path, boxes=b, box_scores=s) if len(b) else []
        except (OSError, ValueError) as err:  # an unreadable image: its persons stay unmatched, and it is named
            skipped.append(f"{Path(path).name}: {err}")
            continue
        detections += len(persons)
        if not persons:
            continue
        targets = np.stack([enlarge_box(records[i].box, gt_box_scale) for i in idx])
        match = match_by_score(np.stack([p.box for p in persons]), np.array([p.box_score for p in persons]),
                               targets, iou_threshold)
        for t, d in match.items():
            pred[idx[t]] = persons[d].keypoints[m_idx, :2]
            found[idx[t]] = True
    gt = np.stack([r.keypoints for r in records]) if n else np.zeros((0, data_set.num_keypoints, 3))
    visible = gt[..., 2] >= VISIBLE
    norm = joint_box_size(gt[..., :2], visible)
    joint_pck, mean = pck(pred, gt[:, d_idx, :2], visible[:, d_idx], norm, pck_threshold)
    _, matched_mean = pck(pred[found], gt[found][:, d_idx, :2], visible[found][:, d_idx], norm[found], pck_threshold)
    return DetectedReport(
        pck=mean, matched_pck=matched_mean, recall=float(found.mean()) if n else float("nan"),
        num_persons=n, num_matched=int(found.sum()), num_images=len(by_image),
        detections_per_image=detections / max(len(by_image), 1),
        per_joint_pck={nm: float(v) for nm, v in zip(names, joint_pck, strict=True)},
        pck_threshold=pck_threshold, iou_threshold=iou_threshold, gt_box_scale=gt_box_scale,
        seconds=time.perf_counter() - t0, skipped=skipped,
    )


def run_detected_eval(
    weights: str | Path | None = None,
    data: EvalDataSpec | None = None,
    options: EvalOptions | None = None,
    detector: DetectorOptions | None = None,
) -> dict[str, Any]:
    """``tpose eval --detector``: the end-to-end PCK of ``weights`` on a data set's images (see the module doc);
    ``data`` and ``options`` are those of :func:`tpose.engine.eval_run.run_eval` (its flip test, precision,
    joints, device, backend, report file and progress), ``detector`` finds the people (default: YOLOX-Nano)."""
    data = data or EvalDataSpec()
    options = options or EvalOptions()
    detector = detector or DetectorOptions()
    if detector.whole_image:
        raise ValueError("tpose eval --detector needs a detector (auto or a YOLOX .onnx file)")
    if data.cut_at is not None:
        raise ValueError("--cut-at cuts each annotated person's photo at their own torso; with --detector the "
                         "whole image is searched, so leave out one of the two")
    settings = options.settings
    part = build_part(data.part_spec())
    finder = detector.build()
    predictor = PosePredictor.from_options(
        None, weights, PredictorOptions(device=options.device, backend=options.backend, flip_test=settings.flip_test,
                                        precision=settings.precision), finder)
    report = evaluate_detected(predictor, part.records, part.keypoint_set, joint_subset=settings.joint_subset,
                               pck_threshold=settings.pck_threshold, gt_box_scale=data.gt_box_scale,
                               progress=options.progress)
    out = report.to_dict()
    out.update({"weights": predictor.loaded.weights, "data": data.data,
                "detector": str(getattr(finder, "path", finder)), "detector_size": detector.size,
                "detector_threshold": detector.threshold,
                "flip_test": settings.flip_test, "precision": settings.precision, "summary": report.summary()})
    write_report(out, options.report_json)
    return out
