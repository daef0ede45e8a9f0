"""Shared test settings and fixtures: one thread per test process, the real-data paths with their skip
markers, and the tiny model every fast test builds.

The suite runs under pytest-xdist with one worker per core; more threads per worker oversubscribe the
cores, and OpenMP's spin-waiting then makes small models many times slower.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture
def offline_weights(tmp_path, monkeypatch) -> None:
    """Weights and detector lookups isolated from the machine: an empty torch hub cache, no download allowed,
    none of tpose's location variables set."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    for name in ("TPOSE_WEIGHTS_DIR", "TPOSE_WEIGHTS_BASE_URL", "TPOSE_DETECTOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A tiny R-A3 at 64x48 saved as tpose weights, for tests that run the command line on a file."""
    from tpose.models.checkpoint import save_weights

    return save_weights(tiny_model(input_size=(64, 48)), tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


# Debian's chromium (or $TPOSE_CHROMIUM), driven by Playwright in the browser tests
CHROMIUM = os.environ.get("TPOSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


def chromium(*extra_args: str) -> Iterator[Any]:
    """A headless Chromium for a fixture to yield from; skips, saying why, where Playwright or the browser is
    missing or cannot start."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TPOSE_CHROMIUM)")
    manager = sync_api.sync_playwright().start()
    try:
        browser = manager.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    except Exception as err:  # any launch failure means no browser here
        manager.stop()
        pytest.skip(f"Chromium at {CHROMIUM} cannot be launched: {err}")
    yield browser
    browser.close()
    manager.stop()
