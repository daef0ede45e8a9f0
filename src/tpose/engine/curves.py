"""The training curve as a picture: loss and validation metric per epoch, redrawn after every epoch."""

from __future__ import annotations

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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
