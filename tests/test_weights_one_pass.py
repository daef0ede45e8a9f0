"""Weights resolve in one pass (issue 23, point 4): name, tag or path -> file -> its metadata -> model.

How it is counted: ``sys.setprofile`` sees every Python frame that starts; a frame whose code lives in a file of
``src/tpose`` belongs to that module. A module is *entered* when such a frame starts and the nearest tpose frame
below it on the stack is in another module (or there is none: the caller is the user). A module calling its own
functions, or a library (torch) calling back into the module that called it, is no new entry. Code without a
source file (the ``__init__`` a dataclass generates) belongs to no module. *Stays* are the runs of consecutive
frames in one module; the failure messages print them, to show the back-and-forth.

The resolution modules (``factory``, ``weights/*``, ``models/checkpoint``, ``models/diagnosis``) are each
entered at most once; the diagnosis not at all for a file that fits, and only when one does not.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Callable
from itertools import groupby
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import tpose
from tpose.factory import shipped_weights
from tpose.models.checkpoint import save_released_layout
from tpose.models.variants import build_model
from tpose.weights import catalog

SRC = Path(tpose.__file__).resolve().parent
RESOLUTION = ("tpose.factory", "tpose.weights.", "tpose.models.checkpoint", "tpose.models.diagnosis")
SHIPPED_TAG = "lsp-mpii-128x96"


def _module(frame: FrameType) -> str | None:
    """The tpose module whose source file holds the frame's code, else None."""
    try:
        rel = Path(frame.f_code.co_filename).resolve().relative_to(SRC)
    except ValueError:
        return None
    parts = rel.with_suffix("").parts
    return ".".join(("tpose", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _caller(frame: FrameType) -> str | None:
    below = frame.f_back
    while below is not None:
        module = _module(below)
        if module is not None:
            return module
        below = below.f_back
    return None


def trace(call: Callable[[], Any]) -> tuple[Counter[str], list[str]]:
    """Run ``call``; the number of times each tpose module was entered, and the stays (one module name per run)."""
    entries: Counter[str] = Counter()
    frames: list[str] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        module = _module(frame)
        if module is None:
            return
        frames.append(module)
        if _caller(frame) != module:
            entries[module] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(previous)
    return entries, [m for m, _ in groupby(frames)]


def _resolution(entries: Counter[str]) -> dict[str, int]:
    return {m: n for m, n in entries.items() if m.startswith(RESOLUTION)}


def _why(entries: Counter[str], stays: list[str]) -> str:
    return f"entries {dict(entries)}; {len(stays)} stays: {' > '.join(s.removeprefix('tpose.') for s in stays)}"


@pytest.fixture(scope="module")
def shipped() -> Path:
    try:
        return shipped_weights()
    except FileNotFoundError:
        pytest.skip("the shipped weights are not in this install")


@pytest.mark.parametrize("how", ["tag", "default", "path", "variant and tag"])
def test_a_file_that_fits_resolves_in_one_pass(how: str, shipped: Path) -> None:
    kwargs: dict[str, Any] = {
        "tag": {"weights": SHIPPED_TAG},
        "default": {},
        "path": {"model": shipped},
        "variant and tag": {"model": "transpose_r_a4", "weights": SHIPPED_TAG},
    }[how]
    loaded: list[Any] = []
    entries, stays = trace(lambda: loaded.append(tpose.load_pose_model(**kwargs)))
    assert loaded[0].keypoint_set.num_keypoints == 14  # the load did happen
    steps = _resolution(entries)
    assert "tpose.models.checkpoint" in steps, _why(entries, stays)
    assert "tpose.models.diagnosis" not in steps, _why(entries, stays)
    assert all(n == 1 for n in steps.values()), _why(entries, stays)
    if how in ("tag", "variant and tag"):  # a tag passes the catalog, the fetch and the file search once each
        assert {"tpose.weights.catalog", "tpose.weights.download", "tpose.weights.files"} <= set(steps)


def test_a_file_that_does_not_fit_asks_the_diagnosis_once(tmp_path: Path) -> None:
    """A released-layout file of R-A3 loaded as R-A4: the diagnosis names what it holds, entered once."""
    path = save_released_layout(build_model("transpose_r_a3", num_keypoints=14, input_size=(64, 48)),
                                tmp_path / "r_a3.pth")
    failure: list[BaseException] = []

    def load() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                tpose.load_pose_model("transpose_r_a4", weights=path)
            except ValueError as err:
                failure.append(err)

    entries, stays = trace(load)
    assert failure and "transpose_r_a3" in str(failure[0])
    steps = _resolution(entries)
    assert steps.get("tpose.models.diagnosis") == 1, _why(entries, stays)
    assert steps.get("tpose.models.checkpoint") == 1, _why(entries, stays)


def test_the_count_sees_back_and_forth() -> None:
    """The counter itself: a module called three times from outside is entered three times; calls inside, once."""
    entries, _ = trace(lambda: [catalog.offline_mode() for _ in range(3)])
    assert entries["tpose.weights.catalog"] == 3
    entries, _ = trace(lambda: catalog.find(SHIPPED_TAG))
    assert entries["tpose.weights.catalog"] == 1 and entries["tpose.models.variants"] == 1
