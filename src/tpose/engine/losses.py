"""The released models' loss: 0.5 * mean((w * (pred - target))^2) over joints and pixels."""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """pred, target [B, K, h, w]; weight [B, K] (0 for unlabelled joints). Computed in float32."""
    w = weight.to(torch.float32)[:, :, None, None]
    diff = (pred.to(torch.float32) - target.to(torch.float32)) * w
    return 0.5 * diff.pow(2).mean()
