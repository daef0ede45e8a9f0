"""Throughput of the training data pipeline, per worker: does data loading keep up with the GPU?

Times ``TopDownDataset.__getitem__`` with the released augmentation on real LSPET images, in one
process (one DataLoader worker does exactly this), at each input size, with and without the crop
cache. Reports the median over repeats of samples per second and writes
``benchmarks/results/data_pipeline.{json,md}``.

    python benchmarks/bench_data.py --num-samples 300 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from tpose.data import LSP14, CropCache, TopDownDataset, load_lspet_records
from tpose.utils.sizes import parse_size

# run from the repository root: results go to benchmarks/results, data is ../shared/data
REPO = Path(".")
DEFAULT_LSPET = Path("..") / "shared" / "data" / "lspet"


def time_pass(ds: TopDownDataset, order: np.ndarray) -> float:
    start = time.perf_counter()
    for i in order:
        ds[int(i)]
    return time.perf_counter() - start


def bench(
    lspet: Path,
    sizes: list[tuple[int, int]],
    num_samples: int,
    repeats: int,
    cache_dir: Path,
    storages: list[str],
) -> list[dict[str, object]]:
    records = load_lspet_records(lspet, first=1, last=num_samples)
    order = np.random.default_rng(0).permutation(len(records))
    rows = []
    for size in sizes:
        for storage in ["none", *storages]:
            cached = storage != "none"
            row: dict[str, object] = {"input": f"{size[0]}x{size[1]}", "crop_cache": storage}
            cache = CropCache(cache_dir, storage=storage, progress=False) if cached else None
            start = time.perf_counter()
            ds = TopDownDataset(records, LSP14, input_size=size, train=True, cache=cache, seed=0)
            if ds.crops is not None:
                row["cache_build_s"] = round(time.perf_counter() - start, 3)
                row["cache_kib_per_crop"] = round(int(ds.crops.offsets[-1]) / len(ds.crops) / 1024, 1)
            time_pass(ds, order[: min(32, len(order))])  # warm the page cache and the code paths
            times = [time_pass(ds, order) for _ in range(repeats)]
            median = statistics.median(times)
            row["samples_per_s"] = round(len(order) / median, 1)
            row["ms_per_sample"] = round(median / len(order) * 1e3, 3)
            row["repeats_s"] = [round(t, 3) for t in times]
            rows.append(row)
            print(f"  {row['input']:>8} cache={storage:5}  {row['samples_per_s']:8.1f} samples/s", flush=True)
    return rows


def markdown(rows: list[dict[str, object]], meta: dict[str, object]) -> str:
    lines = [
        "# Data pipeline throughput (one worker)",
        "",
        f"Training samples (released augmentation, Gaussian targets) per second in one process, on the first "
        f"{meta['num_samples']} LSPET images; median of {meta['repeats']} passes. "
        f"{meta['cpu']}, {meta['cpu_count']} CPUs, load average {meta['load_average']} at start, "
        f"torch threads {meta['torch_threads']}, OpenCV threads {meta['opencv_threads']}.",
        "",
        "| input | crop cache | samples/s | ms/sample | cache build (s) | cache KiB/crop |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input']} | {r['crop_cache']} | {r['samples_per_s']} | {r['ms_per_sample']} "
            f"| {r.get('cache_build_s', '')} | {r.get('cache_kib_per_crop', '')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lspet", type=Path, default=DEFAULT_LSPET, help="LSPET root (joints.mat, images/)")
    parser.add_argument("--num-samples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="256x192,128x96", help="comma-separated HxW input sizes")
    parser.add_argument("--storages", default="jpeg,raw", help="crop cache storages to compare (jpeg, raw)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="crop cache folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if not (args.lspet / "joints.mat").is_file():
        raise SystemExit(f"LSPET not found at {args.lspet}; pass --lspet")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    meta = {
        "num_samples": args.num_samples,
        "repeats": args.repeats,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args.lspet, sizes, args.num_samples, args.repeats, args.cache_dir or Path(tmp),
                     [x for x in args.storages.split(",") if x])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_pipeline.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    table = markdown(rows, meta)
    (args.out / "data_pipeline.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    main()
