"""Dependency rows, affected columns, token mapping, upsampling and threshold of tpose.explain.attention."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tpose.explain.attention import (
    affected_columns,
    apply_threshold,
    crop_person,
    crop_to_token,
    dependency_rows,
    heatmap_to_token,
    image_to_tensor,
    predicted_locations,
    run_attention,
    select_heads,
    select_layers,
    shown_maps,
    tensor_to_image,
    upsample_maps,
)

from .conftest import tiny_model


@pytest.fixture(scope="module")
def result():
    model = tiny_model("transpose_r_a3", num_layers=2, input_size=(64, 48))
    return model, run_attention(model, torch.randn(1, 3, 64, 48))


def test_shapes_and_rows_are_distributions(result):
    _, res = result
    assert res.grid_hw == (8, 6)
    assert res.heatmaps.shape == (17, 16, 12)
    assert res.attention.shape == (2, 2, 48, 48)
    rows = dependency_rows(res.attention, np.arange(48), res.grid_hw)
    assert rows.shape == (2, 2, 48, 8, 6)
    np.testing.assert_allclose(rows.sum(axis=(-2, -1)), 1.0, atol=1e-5)
    assert (rows >= 0).all()


def test_mean_over_heads_matches_the_model(result):
    model, res = result
    model.eval()
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        _, maps = model(x, return_attention=True, keep_heads=False)
    again = run_attention(model, x)
    mean, labels = select_heads(again.attention, "mean")
    assert labels == ["mean"]
    np.testing.assert_allclose(mean[:, 0], torch.stack([m[0] for m in maps]).numpy(), atol=1e-6)


def test_select_heads_and_layers(result):
    _, res = result
    every, labels = select_heads(res.attention, "all")
    assert labels == ["mean", "head 0", "head 1"]
    np.testing.assert_allclose(every[:, 0], res.attention.mean(axis=1), atol=1e-7)
    np.testing.assert_array_equal(every[:, 2], res.attention[:, 1])
    one, labels = select_heads(res.attention, 1)
    assert labels == ["head 1"] and one.shape == (2, 1, 48, 48)
    with pytest.raises(ValueError, match="heads"):
        select_heads(res.attention, 5)
    assert select_layers(4, "last") == [3]
    assert select_layers(4, "all") == [0, 1, 2, 3]
    assert select_layers(4, [0, -1]) == [0, 3]
    with pytest.raises(ValueError, match="4 attention layers"):
        select_layers(4, [4])
    with pytest.raises(ValueError, match="'last', 'all'"):
        select_layers(4, "first")


def test_affected_area_is_the_column(result):
    _, res = result
    cols = affected_columns(res.attention, [7, 30], res.grid_hw)
    assert cols.shape == (2, 2, 2, 8, 6)
    np.testing.assert_array_equal(cols[1, 0, 0].reshape(-1), res.attention[1, 0, :, 7])
    np.testing.assert_array_equal(cols[0, 1, 1].reshape(-1), res.attention[0, 1, :, 30])


def test_dependency_row_of_the_predicted_keypoint(result):
    _, res = result
    xy, scores = predicted_locations(res.heatmaps)
    k = 3
    assert scores[k] == res.heatmaps[k].max()
    assert res.heatmaps[k, xy[k, 1], xy[k, 0]] == res.heatmaps[k].max()
    token = heatmap_to_token(xy[k : k + 1], res.heatmap_hw, res.grid_hw)[0]
    assert token == (xy[k, 1] // 2) * 6 + xy[k, 0] // 2  # R models: token grid is heatmap / 2
    row = dependency_rows(res.attention[-1], [token], res.grid_hw)
    np.testing.assert_array_equal(row[:, 0].reshape(2, -1), res.attention[-1, :, token])


def test_token_mapping():
    # H models: token grid equals the heatmap grid
    assert heatmap_to_token(np.array([[5, 7]]), (64, 48), (64, 48))[0] == 7 * 48 + 5
    # R models: pixel (11, 15) of a 16x12 heatmap is token (7, 5) of the 8x6 grid
    assert heatmap_to_token(np.array([[11, 15]]), (16, 12), (8, 6))[0] == 7 * 6 + 5
    # crop pixels: 8 px cells; points outside are clipped to the border cells
    tokens = crop_to_token(np.array([[0, 0], [47.9, 63.9], [8.0, 16.0], [-5, 100]]), (64, 48), (8, 6))
    assert tokens.tolist() == [0, 47, 2 * 6 + 1, 7 * 6 + 0]


def test_upsample_is_opencv_bilinear_and_threshold_masks():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 4, 8, 6)).astype(np.float32) * 0.002
    up = upsample_maps(maps, (64, 48))
    assert up.shape == (3, 4, 64, 48)
    np.testing.assert_array_equal(up[1, 2], cv2.resize(maps[1, 2], (48, 64), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(upsample_maps(np.full((8, 6), 0.25, np.float32), (64, 48)), 0.25)
    shown = shown_maps(maps, (64, 48), 0.001)
    kept = up > 0.001
    assert kept.any() and (~kept).any()
    np.testing.assert_array_equal(shown[kept], up[kept])
    assert (shown[~kept] == 0).all()
    np.testing.assert_array_equal(apply_threshold(up, None), up)
    np.testing.assert_array_equal(apply_threshold(up, 0.0), up)


def test_crop_and_tensor_round_trip():
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 90:110] = (255, 0, 0)
    crop = crop_person(image, [90, 40, 20, 20], (64, 48))
    assert crop.image.shape == (64, 48, 3) and crop.tensor.shape == (1, 3, 64, 48)
    assert np.abs(tensor_to_image(crop.tensor).astype(int) - crop.image.astype(int)).max() <= 1
    centre = crop.image_to_crop(np.array([[99.5, 49.5]]))[0]
    np.testing.assert_allclose(centre, [24.0, 32.0], atol=1e-3)  # box centre -> crop centre
    np.testing.assert_allclose(crop.crop_to_image(crop.image_to_crop(np.array([[95.0, 45.0]]))), [[95.0, 45.0]])
    assert image_to_tensor(crop.image).dtype == torch.float32
    with pytest.raises(ValueError, match="positive w and h"):
        crop_person(image, [0, 0, 0, 10], (64, 48))
