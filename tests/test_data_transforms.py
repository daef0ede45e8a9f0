import numpy as np
import pytest

from tpose.codecs import normalize_image
from tpose.codecs.affine import affine_points, get_affine_transform
from tpose.data.keypoint_sets import COCO17, LSP14
from tpose.data.transforms import (
    AugmentConfig,
    CropParams,
    crop_matrix,
    half_body_center_scale,
    lower_body_mask,
    sample_crop_params,
)


def test_lower_body_masks() -> None:
    assert np.flatnonzero(lower_body_mask(COCO17)).tolist() == list(range(11, 17))
    assert np.flatnonzero(lower_body_mask(LSP14)).tolist() == list(range(0, 6))


def test_flip_is_a_mirror_of_the_crop() -> None:
    center, scale = np.array([120.0, 80.0]), np.array([0.6, 0.8])
    plain = CropParams(center, scale, rotation=20.0, flip=False)
    flipped = CropParams(center, scale, rotation=20.0, flip=True)
    pts = np.array([[100.0, 70.0], [150.0, 95.0], [120.0, 80.0]])
    a = affine_points(pts, crop_matrix(plain, (64, 48)))
    # mirroring the image about the crop centre before a rotation of r equals mirroring the
    # output of a rotation of -r: x -> W - x (the released code's flip, no one-pixel shift)
    b = affine_points(pts, crop_matrix(CropParams(center, scale, rotation=-20.0), (64, 48)))
    c = affine_points(pts, crop_matrix(flipped, (64, 48)))
    np.testing.assert_allclose(c[:, 0], 48 - b[:, 0], atol=1e-6)
    np.testing.assert_allclose(c[:, 1], b[:, 1], atol=1e-6)
    np.testing.assert_allclose(c[2], a[2], atol=1e-6)  # the centre stays put


def test_released_flip_equivalence() -> None:
    """Released code: flip the image (x -> W - 1 - x), crop at the flipped centre; we mirror about the centre."""
    img_w, center, scale, rot = 300, np.array([120.0, 80.0]), np.array([0.6, 0.8]), 15.0
    pts = np.array([[100.0, 70.0], [150.0, 95.0]])
    flipped_pts = np.stack([img_w - 1 - pts[:, 0], pts[:, 1]], 1)
    released_center = np.array([img_w - 1 - center[0], center[1]])
    expected = affine_points(flipped_pts, get_affine_transform(released_center, scale, rot, (64, 48)))
    ours = affine_points(pts, crop_matrix(CropParams(center, scale, rot, flip=True), (64, 48)))
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_sampled_params_stay_in_range() -> None:
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(50, 150, size=(14, 2)), np.ones((14, 1))], 1).astype(np.float32)
    center, scale = np.array([100.0, 100.0], np.float32), np.array([0.75, 1.0], np.float32)
    cfg = AugmentConfig()
    draws = [sample_crop_params(rng, center, scale, kpts, lower_body_mask(LSP14), 0.75, cfg) for _ in range(2000)]
    rots = np.array([p.rotation for p in draws])
    flips = np.mean([p.flip for p in draws])
    halves = np.mean([p.half_body for p in draws])
    full = [p for p in draws if not p.half_body]
    ratios = np.array([p.scale[1] / scale[1] for p in full])
    assert ratios.min() >= 0.65 - 1e-6 and ratios.max() <= 1.35 + 1e-6
    assert np.abs(rots).max() <= 90 and 0.33 < np.mean(rots == 0) < 0.47  # p(no rotation) = 0.4
    assert 0.45 < flips < 0.55 and 0.25 < halves < 0.35
    no_aug = AugmentConfig(half_body_prob=0, scale_factor=0, rotation_prob=0, flip_prob=0)
    p = sample_crop_params(rng, center, scale, kpts, lower_body_mask(LSP14), 0.75, no_aug)
    assert p.rotation == 0 and not p.flip and np.allclose(p.scale, scale) and np.allclose(p.center, center)


def test_half_body_box() -> None:
    kpts = np.zeros((14, 3), dtype=np.float32)
    kpts[:, 2] = 1
    kpts[6:, :2] = [[10, 10], [20, 10], [30, 40], [10, 40], [20, 20], [30, 20], [20, 0], [20, 30]]  # upper
    kpts[:6, :2] = [[0, 100], [10, 100], [20, 100], [0, 200], [10, 200], [20, 200]]  # lower
    mask = lower_body_mask(LSP14)
    outcomes = set()
    for seed in range(20):
        center, scale = half_body_center_scale(kpts, mask, 0.75, np.random.default_rng(seed))
        outcomes.add(round(float(center[1])))
        if round(float(center[1])) == 150:  # lower half: 20 wide, 100 tall -> aspect-fixed 75 x 100
            np.testing.assert_allclose(scale, np.array([75, 100]) / 200 * 1.5, rtol=1e-5)
    assert outcomes == {int(kpts[6:, 1].mean().round()), 150}
    kpts[:, 2] = 0
    assert half_body_center_scale(kpts, mask, 0.75, np.random.default_rng(0)) is None


def test_normalize_image() -> None:
    image = np.full((4, 5, 3), (124, 116, 104), dtype=np.uint8)  # ~ ImageNet mean
    out = normalize_image(image)
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    assert np.abs(out).max() < 0.01
    assert normalize_image(np.full((2, 2, 3), 255, np.uint8))[0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
