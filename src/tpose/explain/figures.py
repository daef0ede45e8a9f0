"""Drawing for the explanation figures: colour maps over the crop, white stars, skeletons and labelled grids.

Figures are composed with NumPy and OpenCV rather than matplotlib's layout engine so that every PNG has a
pixel size that follows from the crop size alone (see :func:`grid_size`), which keeps figures comparable
and testable. Only matplotlib's colour tables are borrowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

# the paper's figures: nipy_spectral over the image at alpha 0.79, dark where attention is low
MAP_CMAP = "nipy_spectral"
MAP_ALPHA = 0.79
# grid layout, in pixels at tile_scale 1
ROW_LABEL_W = 96
COL_LABEL_H = 24
TITLE_H = 28
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


@lru_cache(maxsize=8)
def colormap_lut(name: str = MAP_CMAP) -> np.ndarray:
    """A read-only 256 x 3 uint8 RGB table of a matplotlib colour map (also embedded in the HTML page)."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    lut = np.round(rgba[:, :3] * 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def colorize(values: np.ndarray, vmin: float = 0.0, vmax: float | None = None, cmap: str = MAP_CMAP) -> np.ndarray:
    """[H, W] floats to RGB uint8, ``vmin`` -> first colour, ``vmax`` (default: the map's max) -> last."""
    v = np.asarray(values, dtype=np.float32)
    top = float(v.max()) if vmax is None else float(vmax)
    span = top - vmin
    if not np.isfinite(span) or span <= 0:
        idx = np.zeros(v.shape, dtype=np.int64)
    else:
        idx = np.clip(np.rint((v - vmin) / span * 255.0), 0, 255).astype(np.int64)
    return colormap_lut(cmap)[idx]


def overlay_map(image: np.ndarray, values: np.ndarray, alpha: float = MAP_ALPHA, cmap: str = MAP_CMAP) -> np.ndarray:
    """Blend a map, coloured from 0 to its own maximum, over an RGB image of the same size."""
    if image.shape[:2] != values.shape:
        raise ValueError(f"map of shape {values.shape} does not match the image of shape {image.shape[:2]}")
    colour = colorize(values, 0.0, None, cmap).astype(np.float32)
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def star_polygon(x: float, y: float, radius: float) -> np.ndarray:
    """The 10 corners of a five-pointed star centred at (x, y), first point up."""
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.42)
    return np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)


def draw_star(canvas: np.ndarray, xy: Sequence[float], radius: float = 6.0) -> None:
    """A white star with a thin dark outline (the paper's mark of the predicted location), in place."""
    shift = 4
    pts = np.rint(star_polygon(float(xy[0]), float(xy[1]), radius) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], (255, 255, 255), lineType=cv2.LINE_AA, shift=shift)
    cv2.polylines(canvas, [pts], True, (0, 0, 0), 1, lineType=cv2.LINE_AA, shift=shift)


def draw_skeleton(
    canvas: np.ndarray,
    points: np.ndarray,
    skeleton: Sequence[tuple[int, int]] = (),
    colors: Sequence[tuple[int, int, int]] = (),
    radius: int = 3,
) -> None:
    """Limbs then joints (RGB ``colors`` per keypoint), in place; ``points`` [K, 2] in canvas pixels."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    k = len(pts)
    cols = list(colors) if len(colors) == k else [(0, 200, 80)] * k
    width = max(1, radius - 1)
    for a, b in skeleton:
        pa = (int(round(pts[a, 0])), int(round(pts[a, 1])))
        pb = (int(round(pts[b, 0])), int(round(pts[b, 1])))
        cv2.line(canvas, pa, pb, tuple(int(c) for c in cols[b]), width, lineType=cv2.LINE_AA)
    for i, (x, y) in enumerate(pts):
        centre = (int(round(x)), int(round(y)))
        cv2.circle(canvas, centre, radius, tuple(int(c) for c in cols[i]), -1, lineType=cv2.LINE_AA)
        cv2.circle(canvas, centre, radius, (255, 255, 255), 1, lineType=cv2.LINE_AA)


def short_name(name: str) -> str:
    """``left_shoulder`` -> ``l.shoulder``: keypoint names that fit under a narrow tile."""
    for side, short in (("left_", "l."), ("right_", "r.")):
        if name.startswith(side):
            return short + name[len(side) :]
    return name


def put_text(canvas: np.ndarray, text: str, box: tuple[int, int, int, int], color=TEXT, max_scale: float = 0.5) -> None:
    """``text`` centred in ``box`` = (x, y, w, h), shrunk (then cut) until it fits, in place."""
    x, y, w, h = box
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max_scale
    while True:
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        if (tw <= w - 4 and th + base <= h) or scale <= 0.3:
            break
        scale -= 0.05
    while text and cv2.getTextSize(text, font, scale, 1)[0][0] > w - 4:
        text = text[:-1]
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    org = (x + (w - tw) // 2, y + (h + th) // 2)
    cv2.putText(canvas, text, org, font, scale, color, 1, lineType=cv2.LINE_AA)


def grid_size(n_rows: int, n_cols: int, tile_hw: tuple[int, int], title: bool = True) -> tuple[int, int]:
    """(height, width) in pixels of a :func:`compose_grid` figure."""
    th, tw = tile_hw
    return (TITLE_H if title else 0) + n_rows * th + COL_LABEL_H, ROW_LABEL_W + n_cols * tw


def compose_grid(
    tiles: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
) -> np.ndarray:
    """Tiles (all the same size) in rows, a label left of each row, one under each column, a title on top."""
    n_rows = len(tiles)
    n_cols = max((len(r) for r in tiles), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("a figure grid needs at least one tile")
    th, tw = tiles[0][0].shape[:2]
    height, width = grid_size(n_rows, n_cols, (th, tw), title is not None)
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    top = 0
    if title is not None:
        put_text(canvas, title, (0, 0, width, TITLE_H), max_scale=0.55)
        top = TITLE_H
    for r, row in enumerate(tiles):
        y = top + r * th
        if r < len(row_labels):
            put_text(canvas, row_labels[r], (0, y, ROW_LABEL_W, th), max_scale=0.45)
        for c, tile in enumerate(row):
            if tile.shape[:2] != (th, tw):
                raise ValueError(f"tile ({r}, {c}) is {tile.shape[:2]}, expected {(th, tw)}")
            x = ROW_LABEL_W + c * tw
            canvas[y : y + th, x : x + tw] = tile
    y = top + n_rows * th
    for c, label in enumerate(col_labels[:n_cols]):
        put_text(canvas, label, (ROW_LABEL_W + c * tw, y, tw, COL_LABEL_H), max_scale=0.45)
    return canvas


def resize_tile(image: np.ndarray, scale: float) -> np.ndarray:
    """Scale a tile for display (nearest for enlargements keeps token cells crisp; area for reductions)."""
    if scale == 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interp)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, creating the folder; raises when OpenCV cannot write it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write PNG file {path}")
    return path


def pose_tile(
    image: np.ndarray,
    points: np.ndarray,
    skeleton: Sequence[tuple[int, int]] = (),
    colors: Sequence[tuple[int, int, int]] = (),
    scale: float = 1.0,
) -> np.ndarray:
    """The crop with the predicted skeleton, enlarged or reduced by ``scale``."""
    tile = resize_tile(image, scale).copy()
    draw_skeleton(tile, np.asarray(points, dtype=np.float64) * scale, skeleton, colors, radius=max(2, round(3 * scale)))
    return tile


def map_tile(image: np.ndarray, values: np.ndarray, star: Sequence[float] | None, scale: float = 1.0) -> np.ndarray:
    """A map over the crop (coloured from 0 to its max) with a white star at ``star`` (crop pixels)."""
    tile = resize_tile(overlay_map(image, values), scale).copy()
    if star is not None:
        draw_star(tile, (star[0] * scale, star[1] * scale), radius=max(4.0, 6.0 * scale))
    return tile


def map_grid_figure(
    image: np.ndarray,
    maps: np.ndarray,
    stars: np.ndarray | None,
    pose_points: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    skeleton: Sequence[tuple[int, int]] = (),
    colors: Sequence[tuple[int, int, int]] = (),
    title: str | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """The supplementary's Fig. 2/3 layout: per row, the crop with the skeleton then one map per column.

    ``maps`` [rows, cols, H, W] are already at crop size (and thresholded); ``stars`` [cols, 2] or
    [rows, cols, 2] mark each map's location in crop pixels.
    """
    if maps.ndim != 4 or maps.shape[2:] != image.shape[:2]:
        raise ValueError(f"maps must be [rows, cols, H, W] at the crop size {image.shape[:2]}, got {maps.shape}")
    rows, cols = maps.shape[:2]
    star_arr = None if stars is None else np.broadcast_to(np.asarray(stars, dtype=np.float64), (rows, cols, 2))
    first = pose_tile(image, pose_points, skeleton, colors, scale)
    tiles = []
    for r in range(rows):
        row = [map_tile(image, maps[r, c], None if star_arr is None else star_arr[r, c], scale) for c in range(cols)]
        tiles.append([first, *row])
    return compose_grid(tiles, row_labels, ["prediction", *col_labels], title)
