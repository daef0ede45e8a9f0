"""The int8 benchmark script (benchmarks/bench_int8.py): a tiny run gives positive, finite numbers and a report."""

from __future__ import annotations

import json
import math

from .benchmark_scripts import load

bench = load("bench_int8")
SIZE = (64, 48)


def test_bench_peaks_and_a_tiny_run_give_positive_finite_numbers(tmp_path) -> None:
    for dtype in ("int8", "fp32"):
        assert 0 < bench.ort_matmul_peak(128, threads=1, repeats=1, dtype=dtype) < math.inf
    spec = bench.BenchModel("tiny", "transpose_r_a3", SIZE)
    res = bench.run_benchmark(bench.Int8Bench(models=[spec], batch=[1, 2], repeats=1, threads=1, out=tmp_path,
                                              work_dir=tmp_path / "work", calibration_count=2, lspet_root=None,
                                              matmul_size=128, command="test"), progress=None)
    assert [(r["batch"], r["path"]) for r in res["rows"]] == [(b, p) for b in (1, 2) for p in bench.PATHS]
    for r in res["rows"]:
        for key in ("images_per_s", "gops", "ratio_vs_ort_fp32", "ratio_vs_ort_fp32_min", "percent_int8_peak",
                    "percent_fp32_peak"):
            assert 0 < r[key] < math.inf, (key, r)
    assert all(v > 0 for v in res["peaks"]["used"].values())
    assert [g["batch"] for g in res["goals"]] == [] or res["goals"][0]["batch"] == 8
    md = (tmp_path / "int8.md").read_text()
    assert md.count("| tiny |") == 8 and "avx" in md.lower() and "Command: `test`" in md
    assert json.loads((tmp_path / "int8.json").read_text())["machine"]["cpu_flags"]
    again = bench.run_benchmark(bench.Int8Bench(models=[spec], work_dir=tmp_path / "work", calibration_count=2,
                                                lspet_root=None, prepare_only=True, out=None), progress=None)
    assert set(again["prepared"]) == {"tiny"}
