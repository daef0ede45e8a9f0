"""Validation PCK against optimisation steps for runs compared in docs/results.md (issue 24's fine-tuning
recipe): the x axis is steps, not minutes, since the runs shared a 2-core machine with other jobs.

    python scripts/plot_steps.py "fine-tuned=runs/finetune_mpii16_from_lspet/metrics.jsonl" \\
        "scratch=runs/scratch_mpii16/metrics.jsonl" --steps-per-epoch 25 --start 0.7451 -o docs/figures/curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_curve(path: Path, key: str, steps_per_epoch: int) -> tuple[list[int], list[float]]:
    """(steps done, metric) after each validated epoch of a run's ``metrics.jsonl``."""
    steps, values = [], []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if key in record:
            steps.append(int(record["epoch"]) * steps_per_epoch)
            values.append(float(record[key]))
    return steps, values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="label=path/to/metrics.jsonl")
    parser.add_argument("--steps-per-epoch", type=int, required=True)
    parser.add_argument("--key", default="val_PCK@0.2")
    parser.add_argument("--start", nargs="*", type=float, default=[],
                        help="each run's value before its first step, in the order of the runs (optional)")
    parser.add_argument("--title", default="MPII validation split, 16 joints, PCK@0.2 (flip test)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, spec in enumerate(args.runs):
        label, path = spec.split("=", 1)
        steps, values = read_curve(Path(path), args.key, args.steps_per_epoch)
        if i < len(args.start):
            steps, values = [0, *steps], [args.start[i], *values]
        ax.plot(steps, values, marker="o", label=label)
        for x, y in zip(steps, values, strict=True):
            ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("optimisation steps (batch 16)")
    ax.set_ylabel(args.key.removeprefix("val_"))
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
