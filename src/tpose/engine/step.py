"""One training step as ``tpose train`` runs it: forward under autocast, masked MSE, backward, clipping, update.

A unit of its own so the training loop and the training-step benchmark (``benchmarks/bench_train.py``) run
the same code: a speed measured there is the speed of this step, not of a copy of it.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .losses import masked_mse


@dataclass
class TrainStep:
    """Runs one optimisation step of ``net`` on a batch and returns its (detached) loss.

    ``channels_last``: the images are made channels_last contiguous (the model should be too);
    ``amp_dtype``: the autocast dtype (None: fp32); ``scaler``: a GradScaler for fp16 on CUDA;
    ``grad_clip``: the gradient norm clipped to (0: none). A non-finite loss raises ``FloatingPointError``
    before the weights change.
    """

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    grad_clip: float = 0.0

    def __call__(self, images: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = target.to(self.device, non_blocking=True)
        weight = weight.to(self.device, non_blocking=True)
        amp = self.amp_dtype
        with torch.autocast(self.device.type, dtype=amp) if amp is not None else nullcontext():
            heatmaps = self.net(images)
        loss = masked_mse(heatmaps, target, weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, float(self.grad_clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss.detach()
