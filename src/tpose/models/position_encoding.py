"""Position embeddings of TransPose (supplementary A), rebuilt for whatever token grid arrives.

The released models store the table as a frozen parameter ``pos_embedding`` of shape [h*w, 1, d]
for the 256x192 grid; we keep that key so released checkpoints load, and rebuild (sine) or resize
(learnable) the table when the input gives another grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POSITION_EMBEDDINGS = ("sine", "learnable", "none")


def sine_table(h: int, w: int, d: int, temperature: float = 10000.0) -> torch.Tensor:
    """The released 2D sine table, [h*w, 1, d]: channels 0..d/2-1 encode y, d/2..d-1 encode x.

    Computed in float32 as the released code does, so values match its checkpoints bit for bit.
    """
    if d % 4:  # each half (y, x) holds sin/cos pairs
        raise ValueError(f"sine position embedding needs d_model divisible by 4, got {d}")
    n = d // 2
    eps, scale = 1e-6, 2 * math.pi
    area = torch.ones(1, h, w, dtype=torch.float32)
    y = area.cumsum(1)
    x = area.cumsum(2)
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(n, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / n)
    pos_x = x[..., None] / dim_t
    pos_y = y[..., None] / dim_t
    # even channels take sin, odd channels cos, interleaved as in the released code
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    pos = torch.cat((pos_y, pos_x), dim=3)  # [1, h, w, d]
    return pos.reshape(h * w, 1, d)


def resize_learnable(table: torch.Tensor, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a learned [h*w, 1, d] table to another grid."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    d = table.shape[-1]
    grid = table.reshape(sh, sw, d).permute(2, 0, 1)[None]
    grid = F.interpolate(grid, size=(dh, dw), mode="bicubic", align_corners=False)
    return grid[0].permute(1, 2, 0).reshape(dh * dw, 1, d)


def grid_candidates(tokens: int, stride: int, multiple: int, aspect: float = 256 / 192) -> list[tuple[int, int]]:
    """Grids of ``tokens`` cells valid for the backbone, the ones closest to ``aspect`` (h/w) first."""
    grids = [
        (h, tokens // h)
        for h in range(1, tokens + 1)
        if tokens % h == 0 and (h * stride) % multiple == 0 and (tokens // h * stride) % multiple == 0
    ]
    return sorted(grids, key=lambda g: abs(math.log(g[0] / g[1] / aspect)))


def sine_grid(table: torch.Tensor, candidates: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The grid whose sine table ``table`` is, if it is one (a file's trained size, read off its table)."""
    d = table.shape[-1]
    if d % 4:
        return None
    for h, w in candidates:
        if torch.allclose(table.float().cpu(), sine_table(h, w, d), atol=1e-4):
            return h, w
    return None


class PositionEmbedding(nn.Module):
    """Holds the trained-size table under the checkpoint key and adapts it to any grid.

    The owning model registers the parameter as ``pos_embedding`` at its top level (the released
    key); this module only knows how to produce the table for a grid.
    """

    def __init__(self, kind: str, grid_hw: tuple[int, int], d: int) -> None:
        super().__init__()
        if kind not in POSITION_EMBEDDINGS:
            raise ValueError(f"position embedding must be one of {POSITION_EMBEDDINGS}, got {kind!r}")
        self.kind = kind
        self.grid_hw = tuple(grid_hw)
        self.d = d
        self._cache: dict[tuple, torch.Tensor] = {}

    def initial_table(self) -> torch.Tensor | None:
        h, w = self.grid_hw
        if self.kind == "sine":
            return sine_table(h, w, self.d)
        if self.kind == "learnable":
            return torch.randn(h * w, 1, self.d)
        return None

    def table_for(self, stored: torch.Tensor | None, hw: tuple[int, int]) -> torch.Tensor | None:
        """The [h*w, 1, d] table for grid ``hw``; the stored one when the grid is the trained one."""
        if stored is None:
            return None
        if tuple(hw) == self.grid_hw:
            return stored
        if self.kind == "learnable":
            return resize_learnable(stored, self.grid_hw, hw)
        key = (tuple(hw), stored.device, stored.dtype)
        table = self._cache.get(key)
        if table is None:
            table = sine_table(hw[0], hw[1], self.d).to(device=stored.device, dtype=stored.dtype)
            self._cache[key] = table
        return table
