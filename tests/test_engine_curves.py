"""Training curves: one run's figure and several runs compared, from their metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpose.engine.curves import plot_runs_compared, plot_training_curves, read_history


def _write_run(folder: Path, pck: list[float]) -> Path:
    folder.mkdir(parents=True)
    lines = [json.dumps({"epoch": i + 1, "train_loss": 0.005 - 0.0002 * i, "val_PCK@0.2": v})
             for i, v in enumerate(pck)]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n\n")
    return folder


def test_runs_compared_and_single_curve_are_written(tmp_path: Path) -> None:
    a = read_history(_write_run(tmp_path / "a", [0.5, 0.55, 0.58]))
    b = read_history(_write_run(tmp_path / "b", [0.49, 0.56, 0.57]))
    assert [r["epoch"] for r in a] == [1, 2, 3] and b[2]["val_PCK@0.2"] == 0.57
    out = plot_runs_compared({"fast": a, "reference": b}, tmp_path / "fig" / "cmp.png", title="t")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert plot_training_curves(a, tmp_path / "one.png").is_file()


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        read_history(tmp_path)
    with pytest.raises(ValueError, match="no runs"):
        plot_runs_compared({}, tmp_path / "x.png")
