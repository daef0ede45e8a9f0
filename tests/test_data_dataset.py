from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tpose.codecs.affine import affine_points
from tpose.codecs.heatmap import encode_gaussian
from tpose.data import AugmentConfig, CropParams, ImageReadError, PersonRecord, TopDownDataset
from tpose.data.keypoint_sets import LSP14
from tpose.data.lspet import load_lspet_records
from tpose.data.transforms import crop_matrix

from .conftest import LSPET, needs_lspet


def synthetic_record(tmp_path: Path, name: str = "person.png", image_id: int = 1) -> PersonRecord:
    rng = np.random.default_rng(image_id)
    image = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / name), image)
    kpts = np.zeros((14, 3), dtype=np.float32)
    kpts[:, 0] = np.linspace(60, 100, 14)
    kpts[:, 1] = np.linspace(20, 100, 14)
    kpts[:, 2] = 1
    kpts[3, 2] = 0
    return PersonRecord(str(tmp_path / name), box=[60, 20, 40, 80], keypoints=kpts, image_id=image_id)


def test_eval_sample_layout_and_targets(tmp_path: Path) -> None:
    rec = synthetic_record(tmp_path)
    ds = TopDownDataset([rec], LSP14, input_size=(64, 48), train=False)
    s = ds[0]
    assert s["image"].shape == (3, 64, 48) and s["image"].dtype == torch.float32
    assert s["target"].shape == (14, 16, 12) and s["target_weight"].shape == (14,)
    assert s["center"].shape == (2,) and s["scale"].shape == (2,) and s["rotation"].shape == ()
    assert s["keypoints"].shape == (14, 3) and s["box"].shape == (4,)
    assert s["image_id"].dtype == torch.int64 and int(s["index"]) == 0 and float(s["box_score"]) == 1.0
    np.testing.assert_allclose(s["keypoints"].numpy(), rec.keypoints)  # original image coordinates
    assert s["target_weight"][3] == 0 and s["target"][3].abs().max() == 0  # unlabelled joint
    # box (60, 20, 40, 80): centre (79.5, 59.5), aspect 0.75 -> 60 x 80, x1.25 padding
    np.testing.assert_allclose(s["center"].numpy(), [79.5, 59.5])
    np.testing.assert_allclose(s["scale"].numpy(), [75 / 200, 100 / 200], rtol=1e-6)
    expected = affine_points(rec.keypoints[:, :2], crop_matrix(ds.crop_params(0), (16, 12)))
    inside = s["target_weight"].numpy() > 0
    peaks = s["target"].flatten(1).argmax(1).numpy()
    np.testing.assert_allclose(np.stack([peaks % 12, peaks // 12], 1)[inside], np.round(expected[inside]), atol=1)
    # the pixels are the crop of the image, normalised
    image = cv2.cvtColor(cv2.imread(rec.image_path), cv2.COLOR_BGR2RGB)
    crop = cv2.warpAffine(image, crop_matrix(ds.crop_params(0), (64, 48)), (48, 64), flags=cv2.INTER_LINEAR)
    back = s["image"].numpy().transpose(1, 2, 0) * [0.229, 0.224, 0.225] + [0.485, 0.456, 0.406]
    assert np.abs(back * 255 - crop).max() < 1e-3


def test_flip_swaps_left_and_right(tmp_path: Path) -> None:
    ds = TopDownDataset([synthetic_record(tmp_path)], LSP14, input_size=(64, 48), train=True)
    center, scale = ds.centers[0], ds.scales[0]
    plain = ds.get_sample(0, CropParams(center, scale, rotation=10.0, flip=False))
    mirrored = ds.get_sample(0, CropParams(center, scale, rotation=-10.0, flip=True))
    perm = LSP14.flip_index()
    np.testing.assert_array_equal(mirrored["target_weight"].numpy(), plain["target_weight"].numpy()[perm])
    # keypoint k of the mirrored crop is keypoint perm[k] of the plain one, at x -> W - x
    xy = affine_points(ds.records[0].keypoints[:, :2], crop_matrix(CropParams(center, scale, rotation=10.0), (16, 12)))
    expected_xy = np.stack([12 - xy[:, 0], xy[:, 1]], 1)[perm]
    expected, _ = encode_gaussian(expected_xy, ds.records[0].keypoints[perm, 2], (16, 12))
    np.testing.assert_allclose(mirrored["target"].numpy(), expected, atol=1e-5)
    # the pixels are mirrored too (output x -> W - x, i.e. shifted by one pixel against an array flip)
    img_a, img_b = plain["image"].numpy(), mirrored["image"].numpy()
    diff = np.abs(img_b[:, :, 1:] - img_a[:, :, ::-1][:, :, :-1])
    assert diff.max() < 0.05 and diff.mean() < 1e-3  # OpenCV's fixed-point bilinear rounds a few pixels apart


def test_joint_weights_and_errors(tmp_path: Path) -> None:
    rec = synthetic_record(tmp_path)
    ds = TopDownDataset([rec], LSP14, input_size=(64, 48), use_joint_weights=True)
    w = ds[0]["target_weight"].numpy()
    assert w[0] == pytest.approx(1.5) and w[3] == 0
    bad = PersonRecord(rec.image_path, rec.box, rec.keypoints[:13], image_id=7)
    with pytest.raises(ValueError, match="record 1 .*image_id=7.* 13 keypoints"):
        TopDownDataset([rec, bad], LSP14, input_size=(64, 48))
    missing = PersonRecord(str(tmp_path / "gone.jpg"), rec.box, rec.keypoints, image_id=2)
    with pytest.raises(ImageReadError, match="gone.jpg"):
        TopDownDataset([missing], LSP14, input_size=(64, 48))[0]
    with pytest.raises(ValueError, match="divisible by 4"):
        TopDownDataset([rec], LSP14, input_size=(65, 48))


def test_workers_draw_different_reproducible_augmentations(tmp_path: Path) -> None:
    rec = synthetic_record(tmp_path)
    ds = TopDownDataset([rec] * 8, LSP14, input_size=(32, 24), train=True, augment=AugmentConfig(rotation_prob=1.0))

    def rotations() -> list[float]:
        torch.manual_seed(0)
        loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
        return [r for batch in loader for r in batch["rotation"].tolist()]

    first = rotations()
    assert len(set(np.round(first, 4))) == 8  # every sample, in either worker, drew its own rotation
    assert rotations() == first


@needs_lspet
def test_real_lspet_training_samples() -> None:
    records = load_lspet_records(LSPET, first=1, last=6)
    train = TopDownDataset(records, "lsp14", input_size=(128, 96), train=True, seed=3)
    evaluation = TopDownDataset(records, "lsp14", input_size=(128, 96), train=False)
    for i in range(len(records)):
        s = train[i]
        assert torch.isfinite(s["image"]).all() and s["target"].shape == (14, 32, 24)
        # a joint keeps weight 1 while any of its Gaussian (3 sigma) reaches into the heatmap
        assert (s["target"][s["target_weight"] > 0].flatten(1).amax(1) > 0).all()
        # without augmentation every visible joint lies in the padded box's crop: a full peak
        e = evaluation[i]
        visible = torch.from_numpy(records[i].keypoints[:, 2] > 0)
        assert torch.equal(e["target_weight"] > 0, visible)
        assert (e["target"][visible].flatten(1).amax(1) > 0.5).all()
