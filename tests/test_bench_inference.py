"""The inference benchmark: every path timed and reported, goals judged, memory measured, options checked."""

from __future__ import annotations

import json

import pytest

from .benchmark_scripts import load

bench = load("bench_inference")
Goal = load("goals").Goal

SMALL = {"models": ["transpose_r_a3"], "batch": [1], "input_size": (64, 48), "repeats": 1, "threads": 1,
         "matmul_size": 256}


def test_command_line_times_every_path_and_writes_json_and_markdown(tmp_path) -> None:
    code = bench.main([
        "--models", "transpose_r_a3", "--batch", "1", "2", "--input-size", "64x48", "--repeats", "1",
        "--threads", "1", "--no-memory", "--out", str(tmp_path), "--note", "test run", "--matmul-size", "256",
    ])
    assert code == 0
    data = json.loads((tmp_path / "inference-64x48.json").read_text())
    rows = data["rows"]
    assert [(r["batch"], r["path"]) for r in rows] == [(b, p) for b in (1, 2) for p in bench.PATHS]
    for r in rows:
        assert r["median_s"] > 0 and r["n"] == 1 and r["parameters"] > 1e6
        assert r["gflops"] == pytest.approx(2 * r["macs_per_image"] * r["batch"] / r["median_s"] / 1e9)
        assert 0 < r["percent_of_matmul_peak"]
    assert [r["speedup_vs_reference"] for r in rows if r["path"] == "reference"] == [1.0, 1.0]
    assert data["note"] == "test run" and data["threads"] == 1 and data["matmul_peak_gflops"]["used"] > 0
    md = (tmp_path / "inference-64x48.md").read_text()
    assert md.count("| transpose_r_a3 |") == 8 and "**Note:** test run" in md and "onnxruntime" in md


def test_peak_memory_is_measured_in_a_child_per_path(tmp_path) -> None:
    res = bench.run_benchmark(bench.InferenceBench(**SMALL, paths=["torch"], memory=True, out=None), progress=None)
    (row,) = res["rows"]
    assert "memory_error" not in row
    assert row["peak_rss_bytes"] >= row["rss_after_build_bytes"] > 50 * 2**20


def test_reference_is_skipped_where_its_attention_maps_would_not_fit(monkeypatch) -> None:
    monkeypatch.setattr(bench, "REFERENCE_MEMORY_SHARE", 1e-9)
    options = bench.InferenceBench(**SMALL, paths=["reference", "torch"], memory=False, out=None)
    res = bench.run_benchmark(options, progress=None)
    ref, ours = res["rows"]
    assert "GiB" in ref["skipped"] and "median_s" not in ref
    assert ours["speedup_vs_reference"] is None


def test_goals_are_judged_at_batch_8() -> None:
    rows = [
        {"model": "transpose_h_a4", "path": "torch", "batch": 8, "speedup_vs_reference": 1.4},
        {"model": "transpose_r_a4", "path": "torch", "batch": 8, "speedup_vs_reference": 0.9},
        {"model": "transpose_r_a4", "path": "onnxruntime", "batch": 1, "speedup_vs_reference": 3.0},
    ]
    goals = {(g["model"], g["path"]): g for g in bench.judge_goals(rows, bench.DEFAULT_GOALS, 8)}
    assert goals[("transpose_h_a4", "torch")]["met"] is True
    assert goals[("transpose_r_a4", "torch")]["met"] is False
    assert goals[("transpose_r_a4", "onnxruntime")]["met"] is None  # only batch 1 was measured
    text = bench.goal_text(list(goals.values()))
    assert "1.40x (met)" in text and "0.90x (MISSED)" in text


def test_goals_given_on_the_command_line_are_the_ones_judged(monkeypatch) -> None:
    seen: dict = {}
    monkeypatch.setattr(bench, "run_benchmark", lambda options, **_kw: seen.update(vars(options)) or {"files": []})
    assert bench.main([]) == 0
    assert seen["goals"] == bench.DEFAULT_GOALS and seen["goal_batch"] == 8
    assert bench.main(["--goal", "transpose_r_a3@torch_cl:1.2", "--goal-batch", "1"]) == 0
    assert seen["goals"] == (Goal("transpose_r_a3", "torch_cl", 1.2),) and seen["goal_batch"] == 1
    assert bench.main(["--no-goals"]) == 0
    assert seen["goals"] == ()
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--goal", "transpose_r_a3@tensorrt:2"])
    rows = [{"model": "transpose_r_a3", "path": "torch_cl", "batch": 1, "speedup_vs_reference": 1.5}]
    (goal,) = bench.judge_goals(rows, (Goal("transpose_r_a3", "torch_cl", 1.2),), 1)
    assert goal == {"model": "transpose_r_a3", "path": "torch_cl", "batch": 1, "need": 1.2, "got": 1.5, "met": True}


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="unknown models"):
        bench.run_benchmark(bench.InferenceBench(models=["transpose_x"], out=None), progress=None)
    with pytest.raises(ValueError, match="unknown paths"):
        bench.run_benchmark(bench.InferenceBench(**SMALL, paths=["tensorrt"], out=None), progress=None)
    with pytest.raises(ValueError, match="batch sizes must be positive"):
        bench.run_benchmark(bench.InferenceBench(models=["transpose_r_a3"], batch=[0], out=None), progress=None)
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--input-size", "256"])
