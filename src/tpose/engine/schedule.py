"""Learning-rate schedules as pure functions of progress, so resuming needs no scheduler state."""

from __future__ import annotations

import math


def learning_rate(
    kind: str,
    base: float,
    end: float,
    epoch: int,
    step_in_epoch: int,
    steps_per_epoch: int,
    epochs: int,
    per: str = "epoch",
    warmup_steps: int = 0,
    milestones: tuple[float, ...] = (0.7, 0.9),
) -> float:
    """The rate for one optimizer step.

    ``per="epoch"`` changes the rate once per epoch, as the released recipe's ``CosineAnnealingLR``;
    ``per="step"`` follows the same curve smoothly. A linear warm-up over ``warmup_steps`` comes first.
    """
    global_step = epoch * steps_per_epoch + step_in_epoch
    if warmup_steps and global_step < warmup_steps:
        return base * (global_step + 1) / warmup_steps
    if per == "step":
        progress = global_step / max(1, epochs * steps_per_epoch)
    else:
        progress = epoch / max(1, epochs)
    if kind == "cosine":
        return end + (base - end) * 0.5 * (1 + math.cos(math.pi * progress))
    if kind == "step":
        return base * (0.1 ** sum(progress >= m for m in milestones))
    if kind == "constant":
        return base
    raise ValueError(f"unknown schedule {kind!r}: use cosine, step or constant")
