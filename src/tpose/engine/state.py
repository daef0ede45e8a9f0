"""Atomic training checkpoints, so an interrupted run resumes exactly from its last completed epoch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_training_state(path: str | Path, **state: Any) -> None:
    atomic_torch_save(state, path)


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # our own file: it holds optimizer state and RNG states, which need full unpickling
    return torch.load(path, map_location=map_location, weights_only=False)
