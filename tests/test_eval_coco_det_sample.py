"""End to end on real COCO val images: GT boxes and the real detector boxes, through pycocotools.

A fake model answers each crop with heatmaps built from the ground truth of the person it shows
(the best-overlapping annotated person for a detection), so the only losses left are the pipeline's:
decoding, flip test, inverse crop transform, rescoring, OKS-NMS of duplicate detections, COCO AP.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tpose.codecs import encode_gaussian, flip_heatmaps_back
from tpose.data import COCO17, PersonRecord, TopDownDataset, affine_points, get_affine_transform
from tpose.data.coco import load_coco_records
from tpose.data.detections import load_detection_records
from tpose.engine.evaluate import evaluate

from .conftest import COCO_DET, needs_coco_det, tiny_model

GT_JSON = COCO_DET / "test_coco.json"
DET_JSON = COCO_DET / "test_coco_det_AP_H_56.json"
IMAGE_SIZE = (128, 96)  # heatmaps 32 x 24

pytestmark = needs_coco_det


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


class GroundTruthModel(nn.Module):
    """Heatmaps of the annotated person each crop shows (matched by box overlap), keyed by crop content."""

    def __init__(self, samples: list[dict], heatmap_size: tuple[int, int], truth: list[PersonRecord]):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.lookup: dict[bytes, torch.Tensor] = {}
        hh, hw = heatmap_size
        flip = COCO17.flip_index()
        for sample in samples:
            box = sample["box"].numpy()
            best = max(truth, key=lambda r: _iou(box, r.box))
            kpts, vis = best.keypoints[:, :2], best.keypoints[:, 2]
            if _iou(box, best.box) < 0.5:
                vis = np.zeros_like(vis)  # a crop of no annotated person: empty heatmaps
            matrix = get_affine_transform(sample["center"].numpy(), sample["scale"].numpy(), 0.0, (hh, hw))
            target = torch.from_numpy(encode_gaussian(affine_points(kpts, matrix), vis, (hh, hw))[0])
            self.lookup[sample["image"].numpy().tobytes()] = target
            self.lookup[sample["image"].flip(-1).numpy().tobytes()] = flip_heatmaps_back(target, flip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.lookup[img.numpy().tobytes()] for img in x]) + 0 * self.anchor


@pytest.fixture(scope="module")
def truth() -> list[PersonRecord]:
    records, _ = load_coco_records(GT_JSON, COCO_DET, COCO17)
    return records


def test_gt_boxes_perfect_model_scores_full_pck_and_ap(truth: list[PersonRecord], tmp_path: Path) -> None:
    dataset = TopDownDataset(truth, COCO17, input_size=IMAGE_SIZE)
    samples = [dataset[i] for i in range(len(dataset))]  # read each image once, for the model and the loop
    model = GroundTruthModel(samples, dataset.heatmap_size, truth)
    report = evaluate(
        model,
        DataLoader(samples, batch_size=8),
        COCO17,
        metrics=("pck", "coco"),
        coco_gt=GT_JSON,
        boxes="gt",
        results_path=tmp_path / "gt.json",
        progress=False,
    )
    assert report.num_persons == len(truth) == 12  # of 14 annotations, 2 have no keypoints
    assert report.metrics["PCK@0.2"] == 1.0
    assert report.metrics["AP"] > 0.99
    assert "GT boxes" in report.summary()


def test_detector_boxes_perfect_model_and_duplicates(truth: list[PersonRecord], tmp_path: Path) -> None:
    detections = load_detection_records(DET_JSON, COCO_DET, GT_JSON, num_keypoints=17)
    dataset = TopDownDataset(detections, COCO17, input_size=IMAGE_SIZE)
    samples = [dataset[i] for i in range(len(dataset))]
    model = GroundTruthModel(samples, dataset.heatmap_size, truth)
    results = tmp_path / "det.json"
    report = evaluate(
        model,
        DataLoader(samples, batch_size=16),
        COCO17,
        metrics=("coco",),
        coco_gt=GT_JSON,
        boxes="detector",
        results_path=results,
        progress=False,
    )
    assert report.num_persons == len(detections) == 118
    assert "detector boxes" in report.summary() and report.to_dict()["boxes"] == "detector boxes"
    keep = report.predictions["nms_keep"]
    assert 0 < keep.sum() < len(keep)  # duplicate detections of the same person are suppressed
    assert len(json.loads(results.read_text())) == keep.sum()
    # every annotated person is found, and crops of nobody score 0 and rank last
    assert report.metrics["AP"] > 0.99 and report.metrics["AR"] > 0.99


def test_detector_boxes_with_a_tiny_random_model_runs_end_to_end() -> None:
    detections = load_detection_records(DET_JSON, COCO_DET, GT_JSON, num_keypoints=17)[:12]
    dataset = TopDownDataset(detections, COCO17, input_size=(64, 48))
    model = tiny_model(input_size=(64, 48))
    report = evaluate(
        model,
        DataLoader(dataset, batch_size=12),
        COCO17,
        metrics=("coco",),
        coco_gt=GT_JSON,
        boxes="detector",
        progress=False,
    )
    assert report.num_persons == 12 and report.predictions["keypoints"].shape == (12, 17, 3)
    assert 0.0 <= report.metrics["AP"] <= 1.0
    assert "detector boxes" in report.summary()
