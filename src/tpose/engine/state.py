"""Atomic training checkpoints, so an interrupted run resumes exactly from its last completed epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..utils.files import atomic_write


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash (or a full disk, which is named in
    the error) never leaves half a file, and the previous checkpoint stays as it was."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_training_state(path: str | Path, **state: Any) -> None:
    atomic_torch_save(state, path)


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # our own file: it holds optimizer state and RNG states, which need full unpickling
    return torch.load(path, map_location=map_location, weights_only=False)
