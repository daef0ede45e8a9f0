"""PosePredictor: crops, batching, flip test, decoding back into image coordinates, model/keypoint-set setup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tpose.codecs import IMAGENET_MEAN, IMAGENET_STD
from tpose.data.image_io import ImageReadError, read_image
from tpose.data.keypoint_sets import COCO17, LSP14
from tpose.inference.predictor import PersonPose, PosePredictor, person_score
from tpose.inference.sources import load_detections
from tpose.models import ModelConfig

from .conftest import COCO_DET, needs_coco_det, tiny_model

SIZE = (64, 48)  # (H, W) of the tiny models


@pytest.fixture(scope="module")
def predictor() -> PosePredictor:
    return PosePredictor(tiny_model(input_size=SIZE), batch_size=4, detector=None)


def _gaussian(h: int, w: int, x: torch.Tensor, y: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """[B, h, w] Gaussians (peak 1) centred at per-sample (x, y)."""
    xs = torch.arange(w, dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32)
    gx = torch.exp(-((xs[None, :] - x[:, None]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((ys[None, :] - y[:, None]) ** 2) / (2 * sigma**2))
    return gy[:, :, None] * gx[:, None, :]


class DotFinder(nn.Module):
    """A stand-in network: every heatmap peaks where the crop's brightness centroid is (crop px / 4)."""

    def __init__(self, num_keypoints: int = 17) -> None:
        super().__init__()
        self.config = ModelConfig(num_keypoints=num_keypoints, input_size=SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = (x[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]).clamp(min=0)  # red channel back in [0, 1]
        b, h, w = v.shape
        total = v.sum(dim=(1, 2)).clamp(min=1e-8)
        cx = (v * torch.arange(w, dtype=v.dtype)[None, None, :]).sum(dim=(1, 2)) / total
        cy = (v * torch.arange(h, dtype=v.dtype)[None, :, None]).sum(dim=(1, 2)) / total
        maps = _gaussian(h // 4, w // 4, cx / 4, cy / 4)
        return maps[:, None].repeat(1, self.config.num_keypoints, 1, 1)


class FixedPeak(nn.Module):
    """A stand-in network whose heatmaps all peak at one known heatmap location."""

    def __init__(self, x: float, y: float) -> None:
        super().__init__()
        self.config = ModelConfig(num_keypoints=17, input_size=SIZE)
        self.peak = (x, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        maps = _gaussian(SIZE[0] // 4, SIZE[1] // 4, torch.full((b,), self.peak[0]), torch.full((b,), self.peak[1]))
        return maps[:, None].repeat(1, 17, 1, 1)


def dot_image(h: int, w: int, x: float, y: float, sigma: float = 4.0) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    blob = 255.0 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.round(blob).astype(np.uint8)
    return img


def test_keypoints_map_back_through_the_inverse_crop_affine() -> None:
    pred = PosePredictor(DotFinder(), flip_test=False, detector=None)
    dot = (123.4, 87.7)
    image = dot_image(200, 300, *dot)
    boxes = np.array(
        [
            [80.0, 40.0, 90.0, 120.0],  # taller than 4:3, widened to the input aspect
            [60.0, 60.0, 140.0, 50.0],  # wide box: made taller
            [100.0, 70.0, 40.0, 36.0],  # small box: the crop upsamples
            [40.0, -40.0, 170.0, 250.0],  # partly outside the image: zero border
        ]
    )
    persons = pred.predict(image, boxes)
    assert len(persons) == 4
    for person in persons:
        err = np.abs(person.keypoints - np.array(dot)).max()
        assert err < 0.5, f"box {person.box.tolist()}: keypoint {person.keypoints[0]} vs dot {dot}"
        assert np.all(person.keypoints >= 0) and np.all(person.keypoints < (300, 200))  # inside the image
        assert person.scores.min() > 0.9


def test_fixed_heatmap_peak_lands_where_the_crop_geometry_says() -> None:
    hx, hy = 5.3, 7.6
    pred = PosePredictor(FixedPeak(hx, hy), flip_test=False, detector=None)
    box = (40.0, 30.0, 90.0, 150.0)
    (person,) = pred.predict(np.zeros((200, 300, 3), np.uint8), [box], [0.8])
    # independent geometry: box centre, width widened to W/H = 0.75, padded 1.25, heatmap 12x16 spans it
    cx, cy = 40 + (90 - 1) / 2, 30 + (150 - 1) / 2
    span_w, span_h = 150 * 0.75 * 1.25, 150 * 1.25
    expected = (cx + (hx - 6) * span_w / 12, cy + (hy - 8) * span_h / 16)
    assert np.abs(person.keypoints - np.array(expected)).max() < 0.5
    assert person.box_score == pytest.approx(0.8)
    assert person.score == pytest.approx(0.8 * float(person.scores.mean()), rel=1e-5)


def test_flip_test_averages_with_the_mirrored_crop(predictor: PosePredictor) -> None:
    crops = torch.randn(3, 3, *SIZE)
    hm = predictor.forward_crops(crops)
    model = predictor.model
    with torch.no_grad():
        plain = model(crops).numpy()
        mirrored = model(crops.flip(3)).numpy()
    expected = 0.5 * (plain + mirrored[:, COCO17.flip_index(), :, ::-1])
    assert hm.shape == (3, 17, SIZE[0] // 4, SIZE[1] // 4)
    np.testing.assert_allclose(hm, expected, atol=1e-5)
    assert not np.allclose(hm, plain, atol=1e-4)  # the flip really changed something


def test_forward_crops_returns_attention_for_explanations(predictor: PosePredictor) -> None:
    tensor, center, scale = predictor.preprocess(np.full((90, 70, 3), 128, np.uint8), (5, 5, 50, 60))
    hm, attention = predictor.forward_crops(torch.stack([tensor, tensor]), return_attention=True)
    tokens = (SIZE[0] // 8) * (SIZE[1] // 8)
    assert hm.shape == (2, 17, 16, 12)
    assert len(attention) == 1 and attention[0].shape == (2, tokens, tokens)
    np.testing.assert_allclose(attention[0].sum(-1), 1.0, atol=1e-4)
    assert center.tolist() == pytest.approx([29.5, 34.5])
    assert scale.tolist() == pytest.approx([50 / 200 * 1.25, 50 / 0.75 / 200 * 1.25])  # 50x60 widened to 3:4


def test_preprocess_normalises_an_rgb_crop(predictor: PosePredictor) -> None:
    image = np.zeros((120, 90, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 50
    tensor, _, _ = predictor.preprocess(image, (20, 20, 45, 60))  # crop well inside the image
    assert tensor.shape == (3, *SIZE) and tensor.dtype == torch.float32
    for c, value in enumerate((200, 100, 50)):
        centre = float(tensor[c, SIZE[0] // 2, SIZE[1] // 2])
        assert centre == pytest.approx((value / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-4)


def test_batching_across_images_matches_one_at_a_time(predictor: PosePredictor) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((80, 100), (120, 60), (90, 90))]
    boxes = [np.array([[5, 5, 40, 60], [30, 10, 50, 50]]), None, np.array([[10, 20, 30, 40]] * 3)]
    batched = predictor.predict_batch(images, boxes)  # 6 crops in batches of 4
    assert [len(p) for p in batched] == [2, 1, 3]
    for image, box, got in zip(images, boxes, batched, strict=True):
        alone = predictor.predict(image, box)
        for a, b in zip(alone, got, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert batched[1][0].box.tolist() == [0, 0, 60, 120]  # no boxes: the whole image
    assert predictor.predict(images[0], np.zeros((0, 4))) == []  # an empty box list: nobody


@needs_coco_det
def test_predict_on_a_real_image_path_and_array_agree(predictor: PosePredictor) -> None:
    path = COCO_DET / "000000000785.jpg"
    from_path = predictor.predict(path)
    from_array = predictor.predict(read_image(path))
    assert len(from_path) == 1
    person = from_path[0]
    assert person.keypoints.shape == (17, 2) and person.scores.shape == (17,)
    assert np.isfinite(person.keypoints).all()
    np.testing.assert_allclose(person.keypoints, from_array[0].keypoints)
    d = person.to_dict()
    assert list(d["keypoints"]) == list(COCO17.names)
    assert d["box"] == [0.0, 0.0, 640.0, 425.0]


@needs_coco_det
def test_argmax_keypoints_stay_inside_the_crop_window() -> None:
    pred = PosePredictor(tiny_model(input_size=SIZE), decode="argmax", detector=None)
    (person,) = pred.predict(COCO_DET / "000000000785.jpg")
    # the 640x425 image as one box: heightened to 3:4 (853.3 px) and padded by 1.25, centred on the image
    half_w, half_h = 640 * 1.25 / 2, 640 / 0.75 * 1.25 / 2
    assert np.all(np.abs(person.keypoints[:, 0] - 319.5) <= half_w + 0.01)
    assert np.all(np.abs(person.keypoints[:, 1] - 212.0) <= half_h + 0.01)


@needs_coco_det
def test_boxes_from_a_detection_file(predictor: PosePredictor) -> None:
    dets = load_detections(COCO_DET / "test_coco_det_AP_H_56.json", gt_json=COCO_DET / "test_coco.json")
    boxes, scores = dets.for_image("000000000785.jpg")
    keep = scores >= 0.5
    persons = predictor.predict(COCO_DET / "000000000785.jpg", boxes[keep], scores[keep])
    assert len(persons) == int(keep.sum()) >= 1
    for person, box, score in zip(persons, boxes[keep], scores[keep], strict=True):
        np.testing.assert_allclose(person.box, box)
        assert person.box_score == pytest.approx(float(score))
        assert person.score == pytest.approx(person_score(person.scores, float(score)))
    out = list(predictor.predict_path(COCO_DET, detections=dets, min_box_score=0.5))
    assert [name for name, _, _ in out] == sorted(p.name for p in COCO_DET.glob("*.jpg"))
    assert len(out[0][2]) == len(persons)


def test_oks_nms_merges_duplicate_boxes_of_one_person() -> None:
    pred = PosePredictor(DotFinder(), flip_test=False, detector=None)
    image = dot_image(200, 300, 123.4, 87.7)
    boxes = [[80, 40, 90, 120], [82, 41, 88, 118], [60, 60, 140, 50]]  # all on the dot; the first two alike
    persons = pred.predict(image, boxes, [0.5, 0.9, 0.7])
    kept = pred.suppress(persons, 0.9)
    assert len(kept) == 1 and kept[0].box_score == pytest.approx(0.9)  # the best-scored duplicate survives
    far = pred.predict(dot_image(200, 300, 40.0, 150.0), [[10, 110, 60, 80]], [0.8])
    assert len(pred.suppress(persons + far, 0.9)) == 2  # a different person is kept
    assert pred.suppress(persons[:1]) == persons[:1]


def test_person_score_uses_only_confident_keypoints() -> None:
    assert person_score(np.array([0.9, 0.1, 0.5, 0.2]), 0.5) == pytest.approx(0.5 * 0.7)
    assert person_score(np.array([0.1, 0.05]), 1.0) == 0.0


def test_keypoint_set_follows_the_model() -> None:
    assert PosePredictor(tiny_model(input_size=SIZE, num_keypoints=14), detector=None).keypoint_set is LSP14
    generic = PosePredictor(tiny_model(input_size=SIZE, num_keypoints=5), detector=None).keypoint_set
    assert generic.names == ("kp0", "kp1", "kp2", "kp3", "kp4")
    with pytest.raises(ValueError, match="keypoint set 'lsp14' has 14 keypoints but the model predicts 17"):
        PosePredictor(tiny_model(input_size=SIZE, num_keypoints=17), keypoint_set="lsp14", detector=None)


def test_clear_errors(predictor: PosePredictor, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="box 1"):
        predictor.predict(np.zeros((50, 50, 3), np.uint8), [[0, 0, 10, 10], [0, 0, 0, 10]])
    with pytest.raises(ValueError, match="2 box scores for 1 boxes"):
        predictor.predict(np.zeros((50, 50, 3), np.uint8), [[0, 0, 10, 10]], [0.5, 0.4])
    with pytest.raises(ImageReadError, match="nowhere.jpg"):
        predictor.predict(tmp_path / "nowhere.jpg")
    with pytest.raises(ValueError, match="unknown model 'transpose_x'"):
        PosePredictor("transpose_x", detector=None)
    with pytest.raises(ValueError, match=r"expected an image path, or a numpy array: uint8 \[H, W, 3\]"):
        predictor.predict(np.zeros((4, 50, 50, 3), np.uint8))


def test_person_pose_round_trips_to_plain_json_types() -> None:
    person = PersonPose(
        keypoints=np.array([[1.234, 5.678], [9.0, 10.0]], np.float32),
        scores=np.array([0.5, 0.25], np.float32),
        box=np.array([1, 2, 3, 4], np.float32),
        box_score=0.9,
        score=0.45,
        keypoint_names=("a", "b"),
    )
    d = person.to_dict()
    assert d == {
        "box": [1.0, 2.0, 3.0, 4.0],
        "box_score": 0.9,
        "score": 0.45,
        "keypoints": {"a": [1.23, 5.68, 0.5], "b": [9.0, 10.0, 0.25]},
    }
