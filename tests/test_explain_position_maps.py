"""Cosine-similarity maps of position embeddings (supplementary B) and their figure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tpose.explain.figures import TITLE_H
from tpose.explain.position_maps import (
    GAP,
    cosine_similarity_maps,
    default_step,
    model_position_tables,
    position_similarity_figure,
    save_position_figure,
)
from tpose.models.position_encoding import sine_table

from .conftest import tiny_model


def test_similarity_maps_of_the_sine_table():
    table = sine_table(8, 6, 32)  # [48, 1, 32]
    sims = cosine_similarity_maps(table, (8, 6))
    assert sims.shape == (8, 6, 8, 6)
    flat = sims.reshape(48, 48)
    np.testing.assert_allclose(np.diag(flat), 1.0, atol=1e-6)
    np.testing.assert_allclose(flat, flat.T, atol=1e-6)
    assert flat.max() <= 1 + 1e-6 and flat.min() >= -1 - 1e-6
    # sine embeddings encode distance: a neighbour is more similar than a far location
    assert sims[4, 3, 4, 4] > sims[4, 3, 4, 0] and sims[4, 3, 5, 3] > sims[4, 3, 0, 3]
    t = table[:, 0].double()
    expected = torch.nn.functional.cosine_similarity(t[3 * 6 + 2][None], t, dim=1).reshape(8, 6)
    np.testing.assert_allclose(sims[3, 2], expected.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"has 40 rows, got \(48, 32\)"):
        cosine_similarity_maps(table, (8, 5))


def test_model_tables():
    sine = tiny_model(input_size=(64, 48))
    assert list(model_position_tables(sine)) == ["sine"]
    learned = tiny_model(input_size=(64, 48), pos_embedding="learnable")
    tables = model_position_tables(learned)
    assert list(tables) == ["learnable", "sine"]
    np.testing.assert_array_equal(tables["learnable"], learned.pos_embedding.detach().numpy()[:, 0])
    assert tables["sine"].shape == (48, 32)
    none = tiny_model(input_size=(64, 48), pos_embedding="none")
    assert model_position_tables(none) == {}


def test_figure_size_and_files(tmp_path):
    grid = (32, 24)
    assert default_step(grid) == 4
    tables = {"sine": sine_table(32, 24, 16), "learned": torch.randn(768, 1, 16)}
    fig = position_similarity_figure(tables, grid)
    # cell scale round(64 / 32) = 2: each map is 64 x 48 px; 8 x 6 maps per embedding, 16 px between embeddings
    mosaic_h, mosaic_w = 8 * (64 + GAP) - GAP, 6 * (48 + GAP) - GAP
    assert fig.shape == (TITLE_H + mosaic_h, 2 * mosaic_w + 16, 3)
    files = save_position_figure(tmp_path / "pe.png", tables, grid, step=8)
    assert [f.name for f in files] == ["pe.png", "pe_sine.npy", "pe_learned.npy"]
    png = cv2.imread(str(files[0]))
    assert png.shape == (TITLE_H + 4 * (64 + GAP) - GAP, 2 * (3 * (48 + GAP) - GAP) + 16, 3)
    np.testing.assert_allclose(np.load(files[1]), cosine_similarity_maps(tables["sine"], grid))
