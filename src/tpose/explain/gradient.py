"""Gradient analysis (supplementary D): does the last layer's attention row predict what the output is sensitive to?

For keypoint k predicted at heatmap pixel p (its channel's argmax), with p falling in token i, we take
``h = heatmap[k, p]`` and the gradient ``dh/dx_j`` with respect to every input token x_j of the LAST
encoder layer (a forward pre-hook swaps that layer's input for a leaf tensor that requires grad). Each
gradient is reduced to one number per token, its L2 norm over the d channels (sensitivity) and its signed
sum over d (direction), and compared with the attention row ``A[i, :]`` (mean over heads unless a head is
chosen) by Pearson and Spearman correlation over the L tokens.

Tokens that reach p without passing through attention (token i for H models; the 2 x 2 tokens under the
R models' 4x4 stride-2 deconvolution) also carry the residual and FFN path, which the attention row does
not describe, so the correlations are also reported over the other ("non-local") tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from ..codecs import HEATMAP_STRIDE
from ..utils.modes import eval_mode
from .attention import (
    heatmap_to_token,
    predicted_locations,
    tensor_to_image,
    token_grid,
    upsample_maps,
)
from .figures import compose_grid, map_tile, pose_tile, put_text, short_name

METRICS = (
    "pearson_norm",
    "spearman_norm",
    "pearson_sum",
    "spearman_sum",
    "pearson_norm_nonlocal",
    "spearman_norm_nonlocal",
)


@dataclass
class GradientCorrelation:
    """Per analysed keypoint: its location, attention row, gradient maps and the correlations between them."""

    keypoints: np.ndarray  # [N] heatmap channels analysed
    heatmap_xy: np.ndarray  # [N, 2] predicted heatmap pixel (argmax)
    tokens: np.ndarray  # [N] token i of that pixel
    values: np.ndarray  # [N] heatmap value h differentiated
    attention: np.ndarray  # [N, L] A[i, :] of the last layer
    grad_norm: np.ndarray  # [N, L] ||dh/dx_j||_2 over d
    grad_sum: np.ndarray  # [N, L] sum over d of dh/dx_j
    local: np.ndarray  # [N, L] True for tokens reaching p through the head alone
    grid_hw: tuple[int, int]
    head: str = "mean"
    pearson_norm: np.ndarray = field(init=False)
    spearman_norm: np.ndarray = field(init=False)
    pearson_sum: np.ndarray = field(init=False)
    spearman_sum: np.ndarray = field(init=False)
    pearson_norm_nonlocal: np.ndarray = field(init=False)
    spearman_norm_nonlocal: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        every = np.ones(self.attention.shape[1], dtype=bool)
        self.pearson_norm = np.array([_pearson(self.attention[i], self.grad_norm[i], every) for i in range(n)])
        self.spearman_norm = np.array([_spearman(self.attention[i], self.grad_norm[i], every) for i in range(n)])
        self.pearson_sum = np.array([_pearson(self.attention[i], self.grad_sum[i], every) for i in range(n)])
        self.spearman_sum = np.array([_spearman(self.attention[i], self.grad_sum[i], every) for i in range(n)])
        self.pearson_norm_nonlocal = np.array(
            [_pearson(self.attention[i], self.grad_norm[i], ~self.local[i]) for i in range(n)]
        )
        self.spearman_norm_nonlocal = np.array(
            [_spearman(self.attention[i], self.grad_norm[i], ~self.local[i]) for i in range(n)]
        )

    def mean(self) -> dict[str, float]:
        """Each correlation averaged over the analysed keypoints (NaNs, from constant maps, left out)."""
        out = {}
        for name in METRICS:
            v = getattr(self, name)
            out[name] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        return out

    def to_dict(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready summary: per keypoint location and correlations, plus the means."""
        per = []
        for n, k in enumerate(self.keypoints):
            entry: dict[str, Any] = {
                "keypoint": int(k),
                "name": names[int(k)] if names is not None and int(k) < len(names) else str(int(k)),
                "heatmap_xy": [int(v) for v in self.heatmap_xy[n]],
                "token": int(self.tokens[n]),
                "value": float(self.values[n]),
            }
            entry.update({m: _json_float(getattr(self, m)[n]) for m in METRICS})
            per.append(entry)
        return {
            "head": self.head,
            "grid_hw": list(self.grid_hw),
            "keypoints": per,
            "mean": {k: _json_float(v) for k, v in self.mean().items()},
        }


def _json_float(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _constant(v: np.ndarray) -> bool:
    return v.size < 2 or bool(np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())))


def _correlation(method, a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """``method`` (scipy.stats.pearsonr or spearmanr) over the masked entries; NaN when either is constant."""
    a, b = a[mask], b[mask]
    if _constant(a) or _constant(b):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.clip(method(a, b)[0], -1.0, 1.0))


def _pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return _correlation(stats.pearsonr, a, b, mask)


def _spearman(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return _correlation(stats.spearmanr, a, b, mask)


def head_tokens(model: nn.Module, heatmap_xy: Sequence[int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Tokens that feed heatmap pixel (x, y) through the head alone, as a boolean [L] mask.

    A 1x1 head (H models) reads one token; a transposed convolution (R models) reads, per axis, the inputs
    m with ``m * stride - padding + t = o`` for some kernel tap t.
    """
    gh, gw = grid_hw
    deconv = None
    layers = getattr(model, "deconv_layers", None)
    if layers is not None:
        deconv = next((m for m in layers.modules() if isinstance(m, nn.ConvTranspose2d)), None)

    def axis(o: int, n: int, dim: int) -> list[int]:
        if deconv is None:
            return [o]
        k, s, p = deconv.kernel_size[dim], deconv.stride[dim], deconv.padding[dim]
        return [(o + p - t) // s for t in range(k) if (o + p - t) % s == 0 and 0 <= (o + p - t) // s < n]

    mask = np.zeros(gh * gw, dtype=bool)
    for r in axis(int(heatmap_xy[1]), gh, 0):
        for c in axis(int(heatmap_xy[0]), gw, 1):
            mask[r * gw + c] = True
    return mask


def gradient_attention_correlation(
    model: nn.Module,
    crop_tensor: torch.Tensor,
    keypoints: Sequence[int] | None = None,
    head: int | None = None,
) -> GradientCorrelation:
    """Attention row vs gradient of the predicted heatmap value, per keypoint (all channels by default).

    ``crop_tensor`` is one normalised crop [1, 3, H, W]; ``head`` picks one attention head instead of their
    mean. The model is run in eval mode (dropout off) and restored to its previous mode afterwards.
    """
    x = crop_tensor if crop_tensor.dim() == 4 else crop_tensor[None]
    if x.shape[0] != 1:
        raise ValueError(f"gradient analysis works on one crop at a time, got a batch of {x.shape[0]}")
    layers = model.global_encoder.layers
    captured: dict[str, torch.Tensor] = {}

    def swap_input(_module: nn.Module, args: tuple) -> tuple:
        leaf = args[0].detach().requires_grad_(True)
        captured["x"] = leaf
        return (leaf, *args[1:])

    param = next(model.parameters())
    handle = layers[-1].register_forward_pre_hook(swap_input)
    try:
        with eval_mode(model), torch.enable_grad():
            heatmaps, maps = model(x.to(param.device, param.dtype), return_attention=True, keep_heads=True)
            grid = token_grid(model, (int(x.shape[2]), int(x.shape[3])))
            heat = heatmaps[0].detach().float().cpu().numpy()
            xy, values = predicted_locations(heat)
            ks = np.arange(heat.shape[0]) if keypoints is None else np.asarray(list(keypoints), dtype=np.int64)
            if ks.size and (ks.min() < 0 or ks.max() >= heat.shape[0]):
                raise ValueError(f"keypoint indices must lie in 0..{heat.shape[0] - 1}, got {ks.tolist()}")
            leaf = captured["x"]
            grads = []
            for n, k in enumerate(ks):
                h = heatmaps[0, int(k), int(xy[k, 1]), int(xy[k, 0])]
                (g,) = torch.autograd.grad(h, leaf, retain_graph=n < len(ks) - 1)
                grads.append(g[0].float().cpu())
    finally:
        handle.remove()
    last = maps[-1][0].detach().float().cpu().numpy()  # [heads, L, L]
    if head is None:
        attn, head_label = last.mean(axis=0), "mean"
    elif 0 <= int(head) < last.shape[0]:
        attn, head_label = last[int(head)], f"head {int(head)}"
    else:
        raise ValueError(f"head {head} does not exist: the model has {last.shape[0]} heads")
    tokens = heatmap_to_token(xy[ks], heat.shape[1:], grid)
    g = torch.stack(grads).numpy() if grads else np.zeros((0, grid[0] * grid[1], 1), np.float32)
    return GradientCorrelation(
        keypoints=ks,
        heatmap_xy=xy[ks],
        tokens=tokens,
        values=values[ks],
        attention=attn[tokens],
        grad_norm=np.linalg.norm(g, axis=2),
        grad_sum=g.sum(axis=2),
        local=np.stack([head_tokens(model, xy[k], grid) for k in ks]) if len(ks) else np.zeros((0, 0), bool),
        grid_hw=grid,
        head=head_label,
    )


def gradient_figure(
    crop_tensor_or_image: torch.Tensor | np.ndarray,
    result: GradientCorrelation,
    names: Sequence[str] | None = None,
    pose_points: np.ndarray | None = None,
    skeleton: Sequence[tuple[int, int]] = (),
    colors: Sequence[tuple[int, int, int]] = (),
    scale: float = 1.0,
) -> np.ndarray:
    """Per keypoint, one above the other: the attention row, the gradient-norm map, and the gradient-norm map
    without the head's local tokens (set to 0, as they carry the residual path the attention does not).

    Maps are upsampled bilinearly to the crop and coloured from 0 to their own maximum; Pearson (P) and
    Spearman (S) correlations with the attention row are printed on the gradient tiles. ``pose_points``
    [K, 2] (crop pixels, all keypoints) draw the skeleton in the first column; by default only the analysed
    points are drawn.
    """
    image = (
        tensor_to_image(crop_tensor_or_image)
        if isinstance(crop_tensor_or_image, torch.Tensor)
        else np.asarray(crop_tensor_or_image)
    )
    hw = image.shape[:2]
    gh, gw = result.grid_hw
    attn = upsample_maps(result.attention.reshape(-1, gh, gw), hw)
    grad = upsample_maps(result.grad_norm.reshape(-1, gh, gw), hw)
    stars = result.heatmap_xy.astype(np.float64) * HEATMAP_STRIDE
    if pose_points is None:
        first = pose_tile(image, stars, (), [tuple(colors[int(k)]) for k in result.keypoints] if colors else (), scale)
    else:
        first = pose_tile(image, pose_points, skeleton, colors, scale)
    blank = np.full_like(first, 255)
    nonlocal_norm = np.where(result.local, 0.0, result.grad_norm)
    grad_nonlocal = upsample_maps(nonlocal_norm.reshape(-1, gh, gw), hw)
    rows: list[list[np.ndarray]] = [[first], [blank], [blank]]
    for n in range(len(result.keypoints)):
        rows[0].append(map_tile(image, attn[n], stars[n], scale))
        rows[1].append(_annotated(map_tile(image, grad[n], stars[n], scale), result.pearson_norm[n],
                                  result.spearman_norm[n]))
        rows[2].append(_annotated(map_tile(image, grad_nonlocal[n], stars[n], scale), result.pearson_norm_nonlocal[n],
                                  result.spearman_norm_nonlocal[n]))
    labels = [
        short_name(names[int(k)]) if names is not None and int(k) < len(names) else str(int(k))
        for k in result.keypoints
    ]
    means = result.mean()
    title = (
        f"last-layer attention row ({result.head}) vs |dh/dx_j|: mean Pearson {means['pearson_norm']:.2f} "
        f"(non-local {means['pearson_norm_nonlocal']:.2f}), Spearman {means['spearman_norm']:.2f} "
        f"(non-local {means['spearman_norm_nonlocal']:.2f})"
    )
    return compose_grid(rows, ["attention", "|dh/dx|", "non-local"], ["prediction", *labels], title)


def _annotated(tile: np.ndarray, pearson: float, spearman: float) -> np.ndarray:
    """Print the two correlations in a darkened band at the tile's bottom."""
    band = max(14, tile.shape[0] // 10)
    tile[-band:] = (tile[-band:].astype(np.float32) * 0.35).astype(np.uint8)
    text = f"P {pearson:.2f} S {spearman:.2f}"
    put_text(tile, text, (0, tile.shape[0] - band, tile.shape[1], band), color=(255, 255, 255), max_scale=0.45)
    return tile
