"""The evaluation loop with a fake model that answers each crop with its own training target.

Such a model is perfect by construction, so anything short of PCK 1.0 / AP 1.0 is a bug in flipping,
decoding, the inverse crop transform, name mapping, rescoring, NMS or the metrics.
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
from tpose.codecs.affine import affine_points, box_to_center_scale, get_affine_transform
from tpose.data.keypoint_sets import COCO17, LIMB_JOINTS, LSP14, KeypointSet
from tpose.engine.evaluate import EvalReport, evaluate
from tpose.engine.options import EvalSettings

H, W = 128, 96  # input; heatmaps are 32 x 24


class TargetModel(nn.Module):
    """Returns each known crop's target heatmaps (mirrored ones for mirrored crops), by image content."""

    def __init__(self, samples: list[dict], out_set: KeypointSet, data_set: KeypointSet, honest_flip: bool = True):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.lookup: dict[bytes, torch.Tensor] = {}
        index = [data_set.names.index(n) if n in data_set.names else -1 for n in out_set.names]
        for s in samples:
            target = torch.stack([s["target"][i] if i >= 0 else torch.zeros_like(s["target"][0]) for i in index])
            mirrored = flip_heatmaps_back(target, out_set.flip_index()) if honest_flip else target
            self.lookup[s["image"].numpy().tobytes()] = target
            self.lookup[s["image"].flip(-1).numpy().tobytes()] = mirrored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.lookup[img.numpy().tobytes()] for img in x]) + self.dummy * 0


def make_samples(n: int, keypoint_set: KeypointSet = COCO17, per_image: int = 2, seed: int = 0) -> list[dict]:
    """Samples in TopDownDataset's format: random persons, their targets, random (unique) pixels."""
    rng = np.random.default_rng(seed)
    k = keypoint_set.num_keypoints
    samples = []
    for i in range(n):
        box = np.array([*rng.uniform(0, 300, 2), *rng.uniform(60, 200, 2)], dtype=np.float32)
        center, scale = box_to_center_scale(box, W / H)
        kpts = np.zeros((k, 3), dtype=np.float32)
        kpts[:, :2] = rng.uniform(box[:2] + 0.1 * box[2:], box[:2] + 0.9 * box[2:], (k, 2))
        kpts[:, 2] = rng.choice([0, 1, 2], size=k, p=[0.15, 0.25, 0.6])
        heat = affine_points(kpts[:, :2], get_affine_transform(center, scale, 0.0, (H // 4, W // 4)))
        target, weight = encode_gaussian(heat, kpts[:, 2], (H // 4, W // 4))
        samples.append(
            {
                "image": torch.from_numpy(rng.standard_normal((3, H, W)).astype(np.float32)),
                "target": torch.from_numpy(target),
                "target_weight": torch.from_numpy(weight),
                "center": torch.from_numpy(center),
                "scale": torch.from_numpy(scale),
                "rotation": torch.tensor(0.0),
                "keypoints": torch.from_numpy(kpts),
                "box": torch.from_numpy(box),
                "box_score": torch.tensor(1.0),
                "image_id": torch.tensor(100 + i // per_image),
                "index": torch.tensor(i),
            }
        )
    return samples


def coco_ground_truth(samples: list[dict]) -> dict:
    annotations = []
    for s in samples:
        kpts = s["keypoints"].numpy()
        box = s["box"].numpy()
        annotations.append(
            {
                "id": int(s["index"]) + 1,
                "image_id": int(s["image_id"]),
                "category_id": 1,
                "iscrowd": 0,
                "bbox": box.tolist(),
                "area": float(box[2] * box[3]),
                "keypoints": kpts.reshape(-1).tolist(),
                "num_keypoints": int((kpts[:, 2] > 0).sum()),
            }
        )
    ids = sorted({a["image_id"] for a in annotations})
    return {
        "images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in ids],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names), "skeleton": []}],
    }


@pytest.mark.parametrize("flip_test", [False, True])
@pytest.mark.parametrize("decode", ["dark", "argmax"])
def test_perfect_model_gets_full_pck(flip_test: bool, decode: str) -> None:
    samples = make_samples(12)
    model = TargetModel(samples, COCO17, COCO17)
    report = evaluate(
        model, DataLoader(samples, batch_size=5), COCO17, EvalSettings(flip_test, decode), progress=False
    )
    assert report.metrics["PCK@0.2"] == 1.0
    assert report.num_persons == 12 and report.num_images == 6
    assert set(report.per_joint_pck) == set(COCO17.names)
    # DARK lands within a small fraction of a heatmap pixel of every labelled joint that lies on the heatmap
    gt = np.stack([s["keypoints"].numpy() for s in samples])
    pixel = np.stack([s["scale"].numpy()[0] * 200 / (W // 4) for s in samples])
    err = np.linalg.norm(report.predictions["keypoints"][..., :2] - gt[..., :2], axis=-1) / pixel[:, None]
    weights = np.stack([s["target_weight"].numpy() for s in samples]) > 0
    assert err[weights].max() < (0.05 if decode == "dark" else 0.25 * np.sqrt(2) + 0.01)  # argmax: 1/4 px per axis
    assert "GT boxes" in report.summary() and report.boxes == "gt"
    assert report.flip_test is flip_test and report.decode == decode


def test_flip_test_really_mirrors_the_crop() -> None:
    samples = make_samples(12)
    model = TargetModel(samples, COCO17, COCO17, honest_flip=False)  # ignores that the input was mirrored
    loader = DataLoader(samples, batch_size=4)
    assert evaluate(model, loader, COCO17, EvalSettings(flip_test=False), progress=False).metrics["PCK@0.2"] == 1
    assert evaluate(model, loader, COCO17, EvalSettings(flip_test=True), progress=False).metrics["PCK@0.2"] < 0.9


def test_lsp_model_on_coco_data_scores_the_shared_limb_joints_by_name() -> None:
    samples = make_samples(10)
    model = TargetModel(samples, LSP14, COCO17)
    report = evaluate(
        model,
        DataLoader(samples, batch_size=4),
        LSP14,
        EvalSettings(joint_subset=LIMB_JOINTS),
        data_keypoint_set=COCO17,
        metrics=("pck",),
        progress=False,
    )
    assert report.metrics["PCK@0.2"] == 1.0
    assert tuple(report.per_joint_pck) == LIMB_JOINTS
    assert report.keypoint_names == LSP14.names and report.predictions["keypoints"].shape == (10, 14, 3)
    with pytest.raises(ValueError, match="every data keypoint"):
        evaluate(
            model,
            DataLoader(samples, batch_size=4),
            LSP14,
            data_keypoint_set=COCO17,
            metrics=("coco",),
            coco_gt=coco_ground_truth(samples),
            progress=False,
        )
    with pytest.raises(ValueError, match="neck"):
        evaluate(
            model,
            DataLoader(samples, batch_size=4),
            LSP14,
            EvalSettings(joint_subset=["neck"]),
            data_keypoint_set=COCO17,
            progress=False,
        )


def test_pckh_on_lsp_data() -> None:
    samples = make_samples(8, keypoint_set=LSP14)
    report = evaluate(
        TargetModel(samples, LSP14, LSP14),
        DataLoader(samples, batch_size=8),
        LSP14,
        metrics=("pck", "pckh"),
        progress=False,
    )
    assert report.metrics["PCKh@0.5"] == 1.0 and report.metrics["PCK@0.2"] == 1.0


def test_coco_ap_of_a_perfect_model_and_nms_of_duplicates(tmp_path: Path) -> None:
    samples = make_samples(8)
    gt = coco_ground_truth(samples)
    duplicate = dict(samples[0], box_score=torch.tensor(0.5), index=torch.tensor(8))  # same person, weaker box
    loader = DataLoader([*samples, duplicate], batch_size=4)
    model = TargetModel(samples, COCO17, COCO17)
    results = tmp_path / "results.json"
    report = evaluate(model, loader, COCO17, metrics=("coco",), coco_gt=gt, results_path=results, progress=False)
    assert report.metrics["AP"] == pytest.approx(1.0) and report.metrics["AR"] == pytest.approx(1.0)
    keep = report.predictions["nms_keep"]
    assert keep[:8].all() and not keep[8]
    written = json.loads(results.read_text())
    assert len(written) == 8 and {r["category_id"] for r in written} == {1}
    assert report.results_path == results and "results.json" in report.summary()
    scores = report.predictions["score"]
    assert 0.5 < scores[0] <= 1.0 and scores[8] == pytest.approx(0.5 * scores[0])  # box score x keypoint mean
    assert isinstance(report, EvalReport) and report.to_dict()["boxes"] == "GT boxes"
    saved = np.load(report.save_predictions(tmp_path / "preds.npz"))
    assert saved["keypoints"].shape == (9, 17, 3)


def test_detector_boxes_are_reported_and_refuse_pck() -> None:
    samples = make_samples(4)
    model = TargetModel(samples, COCO17, COCO17)
    gt = coco_ground_truth(samples)
    report = evaluate(
        model,
        DataLoader(samples, batch_size=4),
        COCO17,
        EvalSettings(flip_test=False),
        boxes="detector",
        metrics=("coco",),
        coco_gt=gt,
        progress=False,
    )
    assert "detector boxes" in report.summary() and "GT boxes" not in report.summary()
    with pytest.raises(ValueError, match="GT boxes"):
        evaluate(model, DataLoader(samples, batch_size=4), COCO17, boxes="detector", progress=False)


def test_bad_arguments_and_batches() -> None:
    samples = make_samples(2)
    model = TargetModel(samples, COCO17, COCO17)
    loader = DataLoader(samples, batch_size=2)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate(model, loader, COCO17, metrics=("mAP",), progress=False)
    with pytest.raises(ValueError, match="coco_gt"):
        evaluate(model, loader, COCO17, metrics=("coco",), progress=False)
    with pytest.raises(ValueError, match="boxes"):
        evaluate(model, loader, COCO17, boxes="mixed", progress=False)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="center"):
        evaluate(model, [{"image": samples[0]["image"][None]}], COCO17, progress=False)
    with pytest.raises(ValueError, match="lsp14"):
        evaluate(model, loader, LSP14, progress=False)  # 17 heatmaps for a 14-keypoint set
    assert model.training  # evaluate restores the mode it found
