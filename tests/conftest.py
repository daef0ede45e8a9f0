"""Shared test settings and fixtures: one thread per test process, the real-data paths with their skip
markers, and the tiny model every fast test builds.

The suite runs under pytest-xdist with one worker per core; more threads per worker oversubscribe the
cores, and OpenMP's spin-waiting then makes small models many times slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(1)

# ../shared/data from the repository root; tests that need a part of it skip cleanly without it
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LSPET = DATA / "lspet"
LSP = DATA / "lsp"
MPII = DATA / "mpii-subset"
MPII_ANN = MPII / "annotations" / "person_keypoints_mpii16.json"
COCO_MINI = DATA / "coco-mini"
COCO_MINI_ANN = COCO_MINI / "annotations" / "person_keypoints_train2017.json"
COCO_DET = DATA / "coco-det-sample"
DETECTOR = DATA / "models" / "yolox_nano.onnx"
VIDEO = DATA / "video" / "vtest.avi"
REPO = Path(__file__).resolve().parents[1]
MPII_VAL_SPLIT = REPO / "configs" / "splits" / "mpii-subset-val.txt"


def _needs(path: Path, what: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{what} not found at {path}")


needs_lspet = _needs(LSPET / "joints.mat", "LSPET")
needs_lsp = _needs(LSP / "joints.mat", "LSP")
needs_mpii = _needs(MPII_ANN, "the MPII subset")
needs_coco_mini = _needs(COCO_MINI_ANN, "the COCO excerpt")
needs_coco_det = _needs(COCO_DET / "test_coco.json", "coco-det-sample")
needs_detector = _needs(DETECTOR, "the YOLOX-Nano file")
needs_video = _needs(VIDEO, "vtest.avi")

# a TransPose small enough to build and run in milliseconds on one thread
TINY: dict[str, Any] = {"num_layers": 1, "d_model": 32, "num_heads": 2, "dim_feedforward": 64}


def tiny_model(name: str = "transpose_r_a3", seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """``name`` with the TINY encoder (and any other ``overrides``), weights seeded by ``seed``, in eval mode."""
    import tpose

    torch.manual_seed(seed)
    return tpose.create_model(name, **{**TINY, **overrides}).eval()
