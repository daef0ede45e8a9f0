"""What position information an embedding holds (supplementary B, Fig. 1): cosine-similarity maps.

For every location (r, c) of the token grid, the map of cosine similarities between its embedding vector
and those of all other locations. Fig. 1 shows one small map per location; to keep the figure readable
we show every ``step``-th row and column of locations (default: at most 8 locations per side), each
map coloured from its own minimum to its maximum (1, at the location itself, marked in red).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.position_encoding import sine_table
from .figures import TITLE_H, colorize, put_text, save_png

POSITION_CMAP = "viridis"
GAP = 2  # pixels between the small maps


def _as_matrix(table: np.ndarray | torch.Tensor, grid_hw: tuple[int, int]) -> np.ndarray:
    t = table.detach().float().cpu().numpy() if isinstance(table, torch.Tensor) else np.asarray(table, np.float32)
    t = t.reshape(t.shape[0], -1) if t.ndim == 3 else t
    if t.ndim != 2 or t.shape[0] != grid_hw[0] * grid_hw[1]:
        raise ValueError(f"a position table for a {grid_hw} grid has {grid_hw[0] * grid_hw[1]} rows, got {t.shape}")
    return t.astype(np.float64)


def cosine_similarity_maps(table: np.ndarray | torch.Tensor, grid_hw: tuple[int, int]) -> np.ndarray:
    """[L, d] or [L, 1, d] embeddings -> [gh, gw, gh, gw]: ``out[r, c]`` is location (r, c) against all others."""
    t = _as_matrix(table, grid_hw)
    unit = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    gh, gw = grid_hw
    return (unit @ unit.T).reshape(gh, gw, gh, gw).astype(np.float32)


def model_position_tables(model: nn.Module, grid_hw: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The model's own embedding for ``grid_hw`` (its trained grid by default), plus the sine table of the
    same size for comparison when the model's is learned. Empty for models without position embedding."""
    if getattr(model, "pos_embedding", None) is None:
        return {}
    grid = tuple(grid_hw) if grid_hw is not None else tuple(model.position.grid_hw)
    table = model.position.table_for(model.pos_embedding, grid)
    d = table.shape[-1]
    kind = model.position.kind
    out = {kind: table.detach().float().cpu().numpy().reshape(-1, d)}
    if kind != "sine":
        out["sine"] = sine_table(grid[0], grid[1], d).numpy().reshape(-1, d)
    return out


def default_step(grid_hw: tuple[int, int], max_per_side: int = 8) -> int:
    """The smallest step that shows at most ``max_per_side`` locations along the longer side."""
    return max(1, math.ceil(max(grid_hw) / max_per_side))


def similarity_mosaic(sims: np.ndarray, step: int, cell_scale: int = 1) -> np.ndarray:
    """The maps of locations (r, c) = (0, step, 2 step, ...) x (0, step, ...) in a grid, RGB uint8."""
    gh, gw = sims.shape[:2]
    rows, cols = range(0, gh, step), range(0, gw, step)
    th, tw = gh * cell_scale, gw * cell_scale
    out = np.full((len(rows) * (th + GAP) - GAP, len(cols) * (tw + GAP) - GAP, 3), 255, dtype=np.uint8)
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            m = sims[r, c]
            tile = colorize(m, float(m.min()), float(m.max()), POSITION_CMAP)
            tile[r, c] = (255, 0, 0)
            tile = np.repeat(np.repeat(tile, cell_scale, axis=0), cell_scale, axis=1)
            y, x = a * (th + GAP), b * (tw + GAP)
            out[y : y + th, x : x + tw] = tile
    return out


def position_similarity_figure(
    tables: dict[str, np.ndarray | torch.Tensor],
    grid_hw: tuple[int, int],
    step: int | None = None,
    cell_scale: int | None = None,
) -> np.ndarray:
    """One PNG-ready image: a mosaic per embedding (e.g. sine and learned), side by side, each titled."""
    if not tables:
        raise ValueError("no position embedding to show")
    step = default_step(grid_hw) if step is None else int(step)
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    cell_scale = max(1, round(64 / grid_hw[0])) if cell_scale is None else int(cell_scale)
    mosaics = [(n, similarity_mosaic(cosine_similarity_maps(t, grid_hw), step, cell_scale)) for n, t in tables.items()]
    sep = 16
    height = TITLE_H + max(m.shape[0] for _, m in mosaics)
    width = sum(m.shape[1] for _, m in mosaics) + sep * (len(mosaics) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for name, m in mosaics:
        label = f"{name}, every {step}" if step > 1 else name
        put_text(canvas, label, (x, 0, m.shape[1], TITLE_H), max_scale=0.45)
        canvas[TITLE_H : TITLE_H + m.shape[0], x : x + m.shape[1]] = m
        x += m.shape[1] + sep
    return canvas


def save_position_figure(
    path: str | Path, tables: dict[str, np.ndarray | torch.Tensor], grid_hw: tuple[int, int], step: int | None = None
) -> list[Path]:
    """Write the figure and, beside it, each embedding's full similarity maps as ``<stem>_<name>.npy``."""
    path = Path(path)
    files = [save_png(path, position_similarity_figure(tables, grid_hw, step))]
    for name, t in tables.items():
        npy = path.with_name(f"{path.stem}_{name}.npy")
        np.save(npy, cosine_similarity_maps(t, grid_hw))
        files.append(npy)
    return files
