"""Decoding: sub-pixel round trips through encode_gaussian, agreement with a plain DARK loop, flips, crop -> image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tpose.codecs import decode_heatmaps, encode_gaussian, flip_heatmaps_back, heatmap_to_image
from tpose.codecs.affine import affine_points, get_affine_transform
from tpose.data.keypoint_sets import COCO17

W, H = 48, 64


def _encode_batch(points: np.ndarray, size: tuple[int, int] = (H, W)) -> np.ndarray:
    n, k, _ = points.shape
    return np.stack([encode_gaussian(points[i], np.ones(k), size)[0] for i in range(n)])


def _interior_points(rng: np.random.Generator, n: int, k: int, margin: float = 3.0) -> np.ndarray:
    return rng.uniform([margin, margin], [W - 1 - margin, H - 1 - margin], size=(n, k, 2))


def _reference_dark(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK as its paper's code does it, one heatmap at a time (whole-map blur, then a Taylor step)."""
    n, k, h, w = heatmaps.shape
    out = np.zeros((n, k, 2))
    border = kernel // 2
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            y, x = divmod(int(hm.argmax()), w)
            out[i, j] = (x, y)
            padded = np.zeros((h + 2 * border, w + 2 * border))
            padded[border:-border, border:-border] = hm
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            blurred *= hm.max() / blurred.max()
            lg = np.log(np.maximum(blurred, 1e-10))
            if 1 < x < w - 2 and 1 < y < h - 2:
                grad = np.array([lg[y, x + 1] - lg[y, x - 1], lg[y + 1, x] - lg[y - 1, x]]) * 0.5
                dxx = 0.25 * (lg[y, x + 2] - 2 * lg[y, x] + lg[y, x - 2])
                dyy = 0.25 * (lg[y + 2, x] - 2 * lg[y, x] + lg[y - 2, x])
                dxy = 0.25 * (lg[y + 1, x + 1] - lg[y - 1, x + 1] - lg[y + 1, x - 1] + lg[y - 1, x - 1])
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                # a step only at a true maximum (negative-definite Hessian), and of at most one pixel
                if np.all(np.linalg.eigvalsh(hessian) < 0):
                    step = np.linalg.solve(hessian, grad)
                    if np.all(np.abs(step) <= 1.0):
                        out[i, j] -= step
    return out


def test_dark_recovers_subpixel_gaussian_centres() -> None:
    rng = np.random.default_rng(0)
    points = _interior_points(rng, 20, 17)
    coords, scores = decode_heatmaps(_encode_batch(points), method="dark")
    assert coords.shape == (20, 17, 2) and coords.dtype == np.float32
    assert np.abs(coords - points).max() < 0.05
    np.testing.assert_allclose(scores, _encode_batch(points).reshape(20, 17, -1).max(-1))


def test_argmax_with_quarter_shift_is_within_a_quarter_pixel() -> None:
    rng = np.random.default_rng(1)
    points = _interior_points(rng, 20, 17)
    coords, _ = decode_heatmaps(_encode_batch(points), method="argmax")
    err = np.abs(coords - points)
    assert err.max() <= 0.25 + 1e-6
    # the shift really happens: plain rounding would leave errors up to 0.5
    assert np.abs(np.round(points) - points).max() > 0.3


def test_argmax_on_exact_pixel_centres_is_exact() -> None:
    points = np.array([[[10.0, 20.0], [0.0, 0.0], [W - 1.0, H - 1.0]]])
    coords, _ = decode_heatmaps(_encode_batch(points), method="argmax")
    np.testing.assert_array_equal(coords, points)


def test_dark_matches_a_per_heatmap_reference_on_noisy_maps() -> None:
    rng = np.random.default_rng(2)
    points = rng.uniform(-4, [W + 3, H + 3], size=(12, 17, 2))  # some peaks off the map and at the border
    heatmaps = _encode_batch(points) * rng.uniform(0.2, 1.0, (12, 17, 1, 1))
    heatmaps = (heatmaps + rng.normal(0, 0.03, heatmaps.shape)).astype(np.float32)
    coords, _ = decode_heatmaps(heatmaps, method="dark")
    np.testing.assert_allclose(coords, _reference_dark(heatmaps), atol=1e-4)


def test_dark_never_jumps_on_an_untrained_models_maps() -> None:
    # noise-like maps, as an untrained model gives: the blurred log-map is often flat or saddle-shaped
    # at the argmax, where an unguarded Taylor step jumps far off the map
    rng = np.random.default_rng(5)
    maps = rng.normal(0.0, 0.01, (40, 17, H, W)).astype(np.float32)
    coords, _ = decode_heatmaps(maps, method="dark")
    argmax, _ = decode_heatmaps(maps, method="argmax")
    assert np.abs(coords - argmax).max() <= 1.25


def test_dark_keeps_the_argmax_at_the_border_and_for_flat_or_negative_maps() -> None:
    heatmaps = np.zeros((1, 3, H, W), dtype=np.float32)
    heatmaps[0, 0] = encode_gaussian(np.array([[0.3, 30.2]]), np.ones(1), (H, W))[0][0]
    heatmaps[0, 2] = -1.0
    heatmaps[0, 2, 40, 20] = -0.5
    coords, scores = decode_heatmaps(heatmaps, method="dark")
    np.testing.assert_array_equal(coords[0, 0], [0.0, 30.0])
    np.testing.assert_array_equal(coords[0, 1], [0.0, 0.0])  # all zeros: first pixel, no refinement
    np.testing.assert_array_equal(coords[0, 2], [20.0, 40.0])
    np.testing.assert_allclose(scores[0], [1.0 * heatmaps[0, 0].max(), 0.0, -0.5])


def test_decode_accepts_torch_and_rejects_bad_input() -> None:
    points = _interior_points(np.random.default_rng(3), 2, 4)
    maps = _encode_batch(points)
    a, _ = decode_heatmaps(torch.from_numpy(maps))
    b, _ = decode_heatmaps(maps)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"\[N, K, H, W\]"):
        decode_heatmaps(maps[0])
    with pytest.raises(ValueError, match="unknown decoding method"):
        decode_heatmaps(maps, method="soft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        decode_heatmaps(maps, blur_kernel=10)


def test_flip_back_twice_is_identity_numpy_and_torch() -> None:
    rng = np.random.default_rng(4)
    maps = rng.random((2, 17, H, W)).astype(np.float32)
    index = COCO17.flip_index()
    np.testing.assert_array_equal(flip_heatmaps_back(flip_heatmaps_back(maps, index), index), maps)
    t = torch.from_numpy(maps)
    assert torch.equal(flip_heatmaps_back(flip_heatmaps_back(t, index), index), t)
    np.testing.assert_array_equal(flip_heatmaps_back(t, index).numpy(), flip_heatmaps_back(maps, index))
    with pytest.raises(ValueError, match="flip_index"):
        flip_heatmaps_back(maps, index[:5])


def test_flip_back_mirrors_and_swaps_left_right() -> None:
    points = _interior_points(np.random.default_rng(5), 1, 17)
    mirrored = points.copy()
    mirrored[..., 0] = W - 1 - mirrored[..., 0]  # no one-pixel shift: column x <-> W - 1 - x
    index = COCO17.flip_index()
    back = flip_heatmaps_back(_encode_batch(mirrored), index)
    expected = _encode_batch(points[:, index])
    np.testing.assert_allclose(back, expected, atol=1e-6)


@pytest.mark.parametrize("rotation", [0.0, 30.0])
def test_heatmap_to_image_inverts_the_crop_transform(rotation: float) -> None:
    rng = np.random.default_rng(6)
    n = 5
    center = rng.uniform(100, 400, (n, 2)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, (n, 2)).astype(np.float32)
    image_pts = center[:, None, :] + rng.uniform(-50, 50, (n, 17, 2))
    heat_pts = np.stack(
        [affine_points(image_pts[i], get_affine_transform(center[i], scale[i], rotation, (H, W))) for i in range(n)]
    )
    back = heatmap_to_image(heat_pts, center, scale, (H, W), rotation=np.full(n, rotation))
    np.testing.assert_allclose(back, image_pts, atol=1e-2)
    if rotation == 0.0:
        np.testing.assert_allclose(heatmap_to_image(heat_pts, center, scale, (H, W)), image_pts, atol=1e-2)
