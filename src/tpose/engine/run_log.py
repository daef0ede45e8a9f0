"""Per-epoch records in three forms: TensorBoard, a JSON-lines file and a CSV table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .curves import plot_training_curves, read_history


class RunLog:
    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.dir = Path(out_dir)
        self.enabled = enabled
        self._tb = None
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.dir / "tb"))
            except ImportError:  # tensorboard is a dependency, but never fail a run over logging
                self._tb = None

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._tb is not None:
            self._tb.add_scalar(tag, value, step)

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        self._rewrite_csv()
        plot_training_curves(self.history(), self.dir / "curves.png", title=self.dir.name)
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.scalar(f"epoch/{key}", float(value), int(record["epoch"]))
        if self._tb is not None:
            self._tb.flush()

    def history(self) -> list[dict[str, Any]]:
        """One record per epoch, in order (see ``read_history``)."""
        return read_history(self.dir) if (self.dir / "metrics.jsonl").exists() else []

    def truncate_after(self, epoch: int) -> None:
        """On resume, drop records of epochs newer than the checkpoint (they will be redone)."""
        if not self.enabled:
            return
        kept = [r for r in self.history() if int(r["epoch"]) <= epoch]
        path = self.dir / "metrics.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._rewrite_csv()

    def _rewrite_csv(self) -> None:
        rows = self.history()
        if not rows:
            return
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with open(self.dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
