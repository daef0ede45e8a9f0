"""Throughput of the training data pipeline, per worker: does data loading keep up with the GPU?

Times ``TopDownDataset.__getitem__`` with the released augmentation on real LSPET images, in one
process (one DataLoader worker does exactly this), at each input size, with and without the crop
cache. Reports the median over repeats of samples per second and writes ``data_pipeline.{json,md}`` into
``--out`` (default ``benchmarks/results``); LSPET is read from ``--lspet`` (default ``../shared/data/lspet``,
both relative to the working directory: run it from the repository root).

    python benchmarks/bench_data.py --num-samples 300 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from common import machine_info, markdown_table
from report import load_average_text, measured_on, record_load_after, write_report

from tpose.data import LSP14, CropCache, TopDownDataset, load_lspet_records
from tpose.utils.sizes import parse_size


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


TITLE = "Data pipeline throughput (one worker)"


def markdown(rows: list[dict[str, object]], meta: dict[str, Any]) -> list[str]:
    """The sections of ``data_pipeline.md`` (below its title): how it was measured, then the table."""
    m = meta["machine"]
    head = (
        f"Training samples (released augmentation, Gaussian targets) per second in one process, on the first "
        f"{meta['num_samples']} LSPET images; median of {meta['repeats']} passes. "
        + measured_on(m, f"torch threads {m['torch_threads']}", f"OpenCV threads {meta['opencv_threads']}")
        + f". {load_average_text(m)}"
    )
    headers = ["input", "crop cache", "samples/s", "ms/sample", "cache build (s)", "cache KiB/crop"]
    table = [[r["input"], r["crop_cache"], r["samples_per_s"], r["ms_per_sample"], r.get("cache_build_s", ""),
              r.get("cache_kib_per_crop", "")] for r in rows]
    return [head, markdown_table(headers, table)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lspet", type=Path, default=Path("..") / "shared" / "data" / "lspet",
                        help="LSPET root (joints.mat, images/), relative to the working directory "
                             "(default: %(default)s)")
    parser.add_argument("--num-samples", type=int, default=300, help="LSPET images timed (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over them (default %(default)s)")
    parser.add_argument("--sizes", default="256x192,128x96", help="comma-separated HxW input sizes "
                        "(default: %(default)s)")
    parser.add_argument("--storages", default="jpeg,raw",
                        help="crop cache storages to compare (jpeg, raw; default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="crop cache folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "results",
                        help="folder for data_pipeline.json and data_pipeline.md (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.lspet / "joints.mat").is_file():
        raise SystemExit(f"LSPET not found at {args.lspet}; pass --lspet")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    machine = machine_info(torch.get_num_threads())
    meta = {
        "num_samples": args.num_samples,
        "repeats": args.repeats,
        "opencv_threads": cv2.getNumThreads(),
        "opencv": cv2.__version__,
        "machine": machine,
    }
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args.lspet, sizes, args.num_samples, args.repeats, args.cache_dir or Path(tmp),
                     [x for x in args.storages.split(",") if x])
    record_load_after(machine, machine["threads"])
    sections = markdown(rows, meta)
    write_report(args.out, "data_pipeline", TITLE, {"meta": meta, "results": rows}, sections)
    print(f"# {TITLE}\n\n" + "\n\n".join(sections))
    return 0


if __name__ == "__main__":
    main()
