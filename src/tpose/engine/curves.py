"""The training curve as a picture: loss and validation metric per epoch, redrawn after every epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def plot_training_curves(history: list[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Train loss (left axis, log scale) and every ``val_*`` metric (right axis) against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    epochs = [int(r["epoch"]) for r in history]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", color="tab:blue", label="train loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (masked MSE)", color="tab:blue")
    metrics = sorted({k for r in history for k in r if k.startswith("val_")})
    if metrics:
        ax2 = ax.twinx()
        for i, key in enumerate(metrics):
            points = [(int(r["epoch"]), r[key]) for r in history if key in r]
            ax2.plot(*zip(*points, strict=True), "s-", color=f"C{i + 1}", label=key[4:])
        ax2.set_ylabel("validation")
        ax2.legend(loc="center right")
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run (its ``metrics.jsonl``), one per epoch in order.

    A line cut short by a kill is ignored, and an epoch logged twice (a run killed after writing its
    record but before its checkpoint, then redone) keeps its last record.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a tpose train output_dir?")
    by_epoch: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "epoch" in record:
            by_epoch[int(record["epoch"])] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_runs_compared(
    runs: dict[str, list[dict[str, Any]]], path: str | Path, metric: str = "val_PCK@0.2", title: str | None = None
) -> Path:
    """Several runs side by side: train loss (left panel) and ``metric`` (right panel) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not runs:
        raise ValueError("no runs to plot")
    path = Path(path)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.6), dpi=120)
    for i, (label, history) in enumerate(runs.items()):
        style = {"color": f"C{i}", "marker": "os^v"[i % 4], "label": label}
        left.plot([int(r["epoch"]) for r in history], [r["train_loss"] for r in history], "-", **style)
        points = [(int(r["epoch"]), r[metric]) for r in history if metric in r]
        if points:
            right.plot(*zip(*points, strict=True), "-", **style)
    left.set_ylabel("train loss (masked MSE)")
    right.set_ylabel(metric.removeprefix("val_") + " (validation)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
