"""Dependency and affected areas: rows and columns of TransPose's attention matrices, as maps over the crop.

For a keypoint predicted at token i, row ``A[i, :]`` of a layer's attention is its *dependency area* (the
locations that prediction draws on); for a chosen location j, column ``A[:, j]`` is its *affected area*
(the locations whose outputs draw on j). Rows are softmax distributions over the L tokens, so they sum
to 1; columns do not. Maps stay raw attention values until the very end, where they are upsampled to the
crop with bilinear interpolation and values at or below a threshold are zeroed (the paper's Fig. 2 uses
0.00075), which is exactly what the figures colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..codecs import HeatmapCodec, affine_points, denormalize_image, normalize_image
from ..utils.modes import eval_mode

DEFAULT_THRESHOLD = 0.00075


@dataclass
class Crop:
    """One person crop as the model sees it, with the affine parameters that map it back to the image."""

    image: np.ndarray  # RGB uint8 [H, W, 3]
    tensor: torch.Tensor  # [1, 3, H, W], ImageNet-normalised
    center: np.ndarray  # [2] image pixels
    scale: np.ndarray  # [2] in units of 200 px
    box: np.ndarray  # [4] x, y, w, h

    @property
    def codec(self) -> HeatmapCodec:
        return HeatmapCodec(tuple(self.image.shape[:2]))

    def image_to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixel coordinates [..., 2] -> crop pixel coordinates."""
        return affine_points(points, self.codec.input_matrix(self.center, self.scale))

    def crop_to_image(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates [..., 2] -> image pixel coordinates."""
        return affine_points(points, cv2.invertAffineTransform(self.codec.input_matrix(self.center, self.scale)))


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> ImageNet-normalised [1, 3, H, W] float32."""
    return torch.from_numpy(normalize_image(np.ascontiguousarray(image)))[None]


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """Undo :func:`image_to_tensor` ([3, H, W] or [1, 3, H, W]) for drawing on a crop given as a tensor."""
    x = tensor.detach().float().cpu()
    return denormalize_image(x[0] if x.dim() == 4 else x)


def crop_person(image: np.ndarray, box: Sequence[float] | np.ndarray, input_hw: tuple[int, int]) -> Crop:
    """The released models' crop of ``box`` (x, y, w, h): aspect forced to W/H, padded by 1.25, no rotation."""
    b = np.asarray(box, dtype=np.float32).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
        raise ValueError(f"a person box is (x, y, w, h) with positive w and h, got {np.asarray(box).tolist()}")
    codec = HeatmapCodec(tuple(input_hw))
    center, scale = codec.box_to_center_scale(b)
    patch = codec.crop(image, center, scale)
    return Crop(patch, image_to_tensor(patch), center, scale, b)


def token_grid(model: nn.Module, input_hw: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of the token grid for an input of ``input_hw``: input / 8 for R models, / 4 for H."""
    stride = int(model.backbone_stride)
    return input_hw[0] // stride, input_hw[1] // stride


@dataclass
class AttentionResult:
    """One crop's heatmaps and every layer's attention, per head, as float32 NumPy arrays."""

    heatmaps: np.ndarray  # [K, h, w]
    attention: np.ndarray  # [layers, heads, L, L]; row i = query token i, index = row * gw + col
    grid_hw: tuple[int, int]
    input_hw: tuple[int, int]

    @property
    def heatmap_hw(self) -> tuple[int, int]:
        return self.heatmaps.shape[1], self.heatmaps.shape[2]

    @property
    def num_layers(self) -> int:
        return self.attention.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attention.shape[1]


def run_attention(model: nn.Module, crop_tensor: torch.Tensor) -> AttentionResult:
    """One eval-mode forward of a single crop [1, 3, H, W] (or [3, H, W]) keeping every head's attention."""
    x = crop_tensor if crop_tensor.dim() == 4 else crop_tensor[None]
    if x.shape[0] != 1:
        raise ValueError(f"explanations work on one crop at a time, got a batch of {x.shape[0]}")
    param = next(model.parameters())
    with eval_mode(model), torch.no_grad():
        heatmaps, maps = model(x.to(param.device, param.dtype), return_attention=True, keep_heads=True)
    input_hw = (int(x.shape[2]), int(x.shape[3]))
    attention = torch.stack([m[0] for m in maps]).float().cpu().numpy()
    grid = token_grid(model, input_hw)
    if attention.shape[-1] != grid[0] * grid[1]:
        raise RuntimeError(f"attention has {attention.shape[-1]} tokens but the token grid is {grid}")
    return AttentionResult(heatmaps[0].float().cpu().numpy(), attention, grid, input_hw)


def select_layers(num_layers: int, layers: str | int | Sequence[int]) -> list[int]:
    """``"last"``, ``"all"``, one index or a list of indices (negative counts from the end)."""
    if layers == "last":
        return [num_layers - 1]
    if layers == "all":
        return list(range(num_layers))
    if isinstance(layers, str):
        raise ValueError(f"layers must be 'last', 'all' or layer indices, got {layers!r}")
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    out = []
    for i in chosen:
        if not -num_layers <= int(i) < num_layers:
            raise ValueError(f"layer {i} does not exist: the model has {num_layers} attention layers")
        out.append(int(i) % num_layers)
    return out


def select_heads(attention: np.ndarray, heads: str | int = "mean") -> tuple[np.ndarray, list[str]]:
    """[layers, heads, L, L] -> [layers, n, L, L] and labels: ``"mean"`` over heads, ``"all"`` (mean first), or one."""
    n = attention.shape[1]
    mean = attention.mean(axis=1, keepdims=True)
    if heads == "mean":
        return mean, ["mean"]
    if heads == "all":
        if n == 1:
            return mean, ["mean"]
        return np.concatenate([mean, attention], axis=1), ["mean"] + [f"head {h}" for h in range(n)]
    if isinstance(heads, (int, np.integer)) and 0 <= int(heads) < n:
        return attention[:, int(heads) : int(heads) + 1], [f"head {int(heads)}"]
    raise ValueError(f"heads must be 'mean', 'all' or a head index below {n}, got {heads!r}")


def predicted_locations(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's argmax as integer heatmap (x, y) [K, 2], and its value [K]: the location explained."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    xy = np.stack([idx % w, idx // w], axis=1).astype(np.int64)
    return xy, flat[np.arange(k), idx].astype(np.float32)


def heatmap_to_token(xy: np.ndarray, heatmap_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Token index of heatmap pixels [N, 2]: the token cell containing the pixel (``x * gw // w``).

    For R models the token grid is half the heatmap, so heatmap pixel (x, y) maps to token (x // 2, y // 2),
    the token whose deconvolution output covers it; for H models the grids coincide.
    """
    (hh, hw), (gh, gw) = heatmap_hw, grid_hw
    p = np.asarray(xy, dtype=np.int64).reshape(-1, 2)
    col = np.clip(p[:, 0] * gw // hw, 0, gw - 1)
    row = np.clip(p[:, 1] * gh // hh, 0, gh - 1)
    return row * gw + col


def crop_to_token(xy: np.ndarray, input_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Token index of crop pixel coordinates [N, 2] (clipped to the grid)."""
    (h, w), (gh, gw) = input_hw, grid_hw
    p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    col = np.clip(np.floor(p[:, 0] * gw / w), 0, gw - 1).astype(np.int64)
    row = np.clip(np.floor(p[:, 1] * gh / h), 0, gh - 1).astype(np.int64)
    return row * gw + col


def dependency_rows(attention: np.ndarray, tokens: Sequence[int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Rows ``A[..., i, :]`` for each token i, as grids: [..., L, L] -> [..., N, gh, gw]."""
    rows = attention[..., np.asarray(tokens, dtype=np.int64), :]
    return rows.reshape(*rows.shape[:-1], *grid_hw)


def affected_columns(attention: np.ndarray, tokens: Sequence[int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Columns ``A[..., :, j]`` for each token j, as grids: [..., L, L] -> [..., N, gh, gw]."""
    cols = np.swapaxes(attention[..., :, np.asarray(tokens, dtype=np.int64)], -1, -2)
    return cols.reshape(*cols.shape[:-1], *grid_hw)


def upsample_maps(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear (OpenCV INTER_LINEAR, half-pixel centres) resize of [..., gh, gw] grids to [..., H, W]."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, *maps.shape[-2:]).astype(np.float32)
    h, w = size_hw
    out = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in flat]) if len(flat) else flat
    return out.reshape(*lead, h, w)


def apply_threshold(maps: np.ndarray, threshold: float | None) -> np.ndarray:
    """A copy with values at or below ``threshold`` set to 0 (``None`` or 0 keeps everything)."""
    out = np.array(maps, dtype=np.float32, copy=True)
    if threshold:
        out[out <= threshold] = 0.0
    return out


def shown_maps(token_maps: np.ndarray, size_hw: tuple[int, int], threshold: float | None) -> np.ndarray:
    """What a figure colours: token grids upsampled to the crop, then thresholded."""
    return apply_threshold(upsample_maps(token_maps, size_hw), threshold)
