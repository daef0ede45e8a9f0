"""Validation PCK against CPU hours for training runs compared in docs/results.md (issue 18, item 4).

Wall-clock minutes of runs that shared the machine with other jobs say little about what a recipe costs,
so the x axis is the work done: the training images each run has seen (``images_per_s`` x
``epoch_minutes`` of its ``metrics.jsonl``) divided by the idle throughput of its training step on the
2-core machine (``--rate``, measured with ``python benchmarks/bench_train.py``), in hours of that machine.

    python scripts/plot_runs.py --start 0.6235 0.6998 0.5608 --rate 20.0 \
        "A base=runs/pilot_A/metrics.jsonl" "shipped=runs/shipped/metrics.jsonl" -o docs/figures/pck_vs_cpu_hours.png

A run that starts from another run's final weights (a training cycle of issue 22) is written
``"LABEL<PARENT=metrics.jsonl"``: it is drawn from the end of PARENT's curve, so the x axis counts the machine
hours of the whole lineage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("val_PCK@0.2", "LSPET validation"), ("val_mpii_PCK@0.2", "MPII validation split"),
          ("val_coco_PCK@0.2", "COCO excerpt"))


def read_run(
    path: Path, rate: float, epoch_rates: list[float] | None = None
) -> tuple[list[float], dict[str, list[float]]]:
    """Cumulative machine hours after each epoch (its images at ``rate`` images/s, or at that epoch's entry
    of ``epoch_rates``: a smaller input size early on steps faster), and each validation metric."""
    hours, values, spent = [], {key: [] for key, _ in PANELS}, 0.0
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        images = float(row["images_per_s"]) * float(row["epoch_minutes"]) * 60.0
        spent += images / (epoch_rates[i] if epoch_rates and i < len(epoch_rates) else rate)
        hours.append(spent / 3600.0)
        for key, _ in PANELS:
            values[key].append(float(row[key]) if key in row else float("nan"))
    return hours, values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="LABEL=metrics.jsonl, or LABEL=metrics.jsonl@R1,R2 with the idle images/s "
                   "of each epoch where they differ from --rate")
    p.add_argument("--rate", type=float, required=True, help="idle training images/s of the step on this machine")
    p.add_argument("--start", type=float, nargs=3, metavar=("LSPET", "MPII", "COCO"),
                   help="the validation PCK of the weights every run starts from (plotted at 0 h)")
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ends: dict[str, tuple[float, dict[str, float]]] = {}  # label -> (hours, values) after its last epoch
    for spec in args.runs:
        label, _, file = spec.partition("=")
        label, _, parent = label.partition("<")
        file, _, rates = file.partition("@")
        hours, values = read_run(Path(file), args.rate, [float(r) for r in rates.split(",")] if rates else None)
        if parent and parent not in ends:
            raise SystemExit(f"{spec!r}: run {parent!r} is not given before it (known: {', '.join(ends) or 'none'})")
        offset, first = ends[parent] if parent else (0.0, None)
        hours = [offset + h for h in hours]
        last = {key: next((v for v in reversed(values[key]) if v == v), float("nan")) for key, _ in PANELS}
        ends[label] = (hours[-1] if hours else offset, last)
        for ax, (key, _) in zip(axes, PANELS, strict=True):
            xs, ys = hours, values[key]
            if first is not None:
                xs, ys = [offset, *xs], [first[key], *ys]
            elif args.start is not None:
                xs, ys = [0.0, *xs], [args.start[PANELS.index((key, _))], *ys]
            kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y == y]  # epochs without validation: skipped
            ax.plot([x for x, _ in kept], [y for _, y in kept], marker="o", ms=3, label=label)
    for ax, (_, title) in zip(axes, PANELS, strict=True):
        ax.set_title(title)
        ax.set_xlabel(f"hours of the 2-core CPU (images seen / {args.rate:g} img/s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PCK@0.2, 12 limb joints, flip test")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
