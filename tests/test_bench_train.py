"""The training-speed benchmark: every configuration timed and reported, failures recorded, goals judged, options."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tpose.utils import machine

from .benchmark_scripts import load
from .conftest import LSPET, TINY, needs_lspet

common, levers, train_report, bench = (load(n) for n in ("common", "levers", "train_report", "bench_train"))
Goal = load("goals").Goal
PipelinePlan = load("pipeline_timing").PipelinePlan
StepPlan = load("step_timing").StepPlan

SMALL = bench.TrainBenchPlan(models=("transpose_r_a3",), sizes=((64, 48),), batch=2, timing=StepPlan(steps=1, rounds=1),
                             threads=1, model_overrides=TINY)
POSITIVE = {"median_s", "min_s", "max_s", "ms_per_step", "images_per_s", "speedup_vs_reference", "final_loss",
            "parameters", "first_step_s", "startup_s", "got"}


def numbers(node: Any, key: str = "") -> list[tuple[str, float]]:
    """Every (key, number) in a JSON tree; list items carry their list's key."""
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in numbers(v, k)]
    if isinstance(node, list):
        return [kv for v in node for kv in numbers(v, key)]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [(key, float(node))]
    return []


def check_numbers(data: dict[str, Any]) -> None:
    found = numbers(data)
    assert found
    for key, value in found:
        assert math.isfinite(value) and value >= 0, (key, value)
        if key in POSITIVE or key.startswith("round_"):
            assert value > 0, (key, value)


def test_tiny_run_times_every_configuration_and_writes_json_and_markdown(tmp_path) -> None:
    names = ["channels_last", "fused", "fused+attn_dropout0", "bf16", "default"]  # "default" again: deduplicated
    res = bench.run_train_benchmark(SMALL, levers=names, pipeline=None, out=tmp_path, note="test run",
                                    command="pytest", progress=None)
    data = json.loads((tmp_path / "train_speed.json").read_text())
    assert data["rows"] == json.loads(json.dumps(res["rows"]))
    names = [r["config"] for r in data["rows"]]
    assert names == ["reference", "default", "channels_last", "fused", "fused+attn_dropout0", "bf16"]
    by_name = {r["config"]: r for r in data["rows"]}
    assert by_name["reference"]["levers"] == [] and by_name["reference"]["speedup_vs_reference"] == 1.0
    assert set(by_name["default"]["levers"]) == set(data["default_levers"]) >= {"fused", "channels_last"}
    assert by_name["fused+attn_dropout0"]["levers"] == ["attn_dropout0", "fused"]
    for r in data["rows"]:
        assert r["n"] == 1 and r["steps_per_round"] == 1 and len(r["round_step_s"]) == 1
        assert r["images_per_s"] == pytest.approx(2 / r["median_s"])
    check_numbers(data)
    m = data["machine"]
    assert m["cpu"] and m["usable_cores"] >= 1 and m["torch"] == torch.__version__ and data["threads"] == 1
    assert data["command"] == "pytest" and data["note"] == "test run" and data["pipeline"] == []
    assert data["resolve_amp_auto_cpu"] in (None, "bfloat16")
    md = (tmp_path / "train_speed.md").read_text()
    assert md.startswith("# Training speed (CPU)") and md.count("| transpose_r_a3 | 64x48 |") == 6
    assert "Command: `pytest`" in md and "**Note:** test run" in md and "resolve_amp" in md


def test_each_step_takes_the_path_its_levers_name(monkeypatch) -> None:
    from tpose.models import build_model as create_model
    from tpose.models.encoder import SelfAttention

    calls: list[tuple[bool, float, bool]] = []
    forward = SelfAttention.forward

    def spy(self: SelfAttention, x: torch.Tensor, pos: torch.Tensor | None, need_weights: bool = False,
            keep_heads: bool = False) -> Any:
        calls.append((need_weights, self.dropout, torch.is_autocast_enabled("cpu")))
        return forward(self, x, pos, need_weights, keep_heads)

    monkeypatch.setattr(SelfAttention, "forward", spy)
    base = create_model("transpose_r_a3", input_size=(64, 48), **TINY)
    x, target, weight = torch.randn(2, 3, 64, 48), torch.rand(2, 17, 16, 12), torch.ones(2, 17)
    expected = {"reference": (True, 0.1, False), "fused": (False, 0.1, False),
                "fused+attn_dropout0": (False, 0.0, False), "bf16": (True, 0.1, True)}
    for name, call in expected.items():
        calls.clear()
        step, model = levers.build_step(base, levers.parse_config(name), x, target, weight, lr=1e-3)
        before = model.final_layer.weight.detach().clone()
        loss = step()
        assert calls == [call], name
        assert torch.isfinite(loss) and not torch.equal(before, model.final_layer.weight), name  # Adam stepped
    _, model = levers.build_step(base, levers.parse_config("channels_last"), x, target, weight, lr=1e-3)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not base.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # each step has its own copy


def test_failed_or_slow_compile_is_recorded_and_the_rest_still_timed(monkeypatch) -> None:
    def broken(model: torch.nn.Module) -> torch.nn.Module:
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    res = bench.run_train_benchmark(SMALL, levers=["compile"], pipeline=None, out=None, progress=None)
    ref, default, comp = res["rows"]
    assert comp["error"].startswith("RuntimeError: no C++ compiler") and "median_s" not in comp
    assert ref["median_s"] > 0 and default["median_s"] > 0
    md = "\n".join(train_report.markdown(res))
    assert "Failures:" in md and "no C++ compiler" in md and "second line" not in md

    def endless(model: torch.nn.Module) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            while True:
                time.sleep(0.01)

        return call

    monkeypatch.setattr(torch, "compile", endless)
    res = bench.run_train_benchmark(SMALL, levers=["compile"], timing=StepPlan(steps=1, rounds=1, compile_timeout=0.3),
                                    pipeline=None, out=None, progress=None)
    assert "TimeLimitExceeded: took longer than 0.3 s" in res["rows"][2]["error"]


def test_compiled_step_reports_its_compile_time_apart(monkeypatch) -> None:
    def slow_first_call(model: torch.nn.Module) -> Any:
        calls: list[int] = []

        def call(*args: Any, **kwargs: Any) -> Any:
            if not calls:
                time.sleep(0.5)  # stands in for tracing and code generation
            calls.append(1)
            return model(*args, **kwargs)

        return call

    monkeypatch.setattr(torch, "compile", slow_first_call)
    res = bench.run_train_benchmark(SMALL, levers=["default+compile"], pipeline=None, out=None, progress=None)
    comp = res["rows"][2]
    assert comp["levers"] == sorted({"compile", *res["default_levers"]})
    assert comp["first_step_s"] >= 0.5 and comp["compile_s"] == pytest.approx(
        comp["first_step_s"] - comp["median_s"])


def test_configurations_that_would_not_fit_in_memory_are_skipped() -> None:
    res = bench.run_train_benchmark(SMALL, levers=["fused+attn_dropout0"], memory_share=1e-12, pipeline=None, out=None,
                                    progress=None)
    ref, default, flash = res["rows"]
    assert "GiB" in ref["skipped"] and "GiB" in default["skipped"]  # both keep [L, L] matrices
    assert flash["median_s"] > 0 and flash["speedup_vs_reference"] is None  # the flash kernel keeps none
    assert "skipped: its attention matrices" in "\n".join(train_report.markdown(res))


@needs_lspet
def test_data_pipeline_is_timed_on_real_images_and_compared_with_the_default_step(tmp_path) -> None:
    pipeline = PipelinePlan(lspet=LSPET, workers=1, samples=8, batches=2, cache_dir=tmp_path / "crops")
    res = bench.run_train_benchmark(SMALL, levers=[], pipeline=pipeline, out=tmp_path, progress=None)
    (pipe,) = res["pipeline"]
    assert pipe["input"] == "64x48" and pipe["workers"] == 1 and pipe["samples"] == 8 and pipe["batch"] == 2
    default = [r for r in res["rows"] if r["config"] == "default"][0]
    assert pipe["ratio_to_default_step"]["transpose_r_a3"] == pytest.approx(
        pipe["images_per_s"] / default["images_per_s"])
    (goal,) = [g for g in res["goals"] if g["goal"] == "data pipeline vs default step"]
    assert goal["need"] == 1.5 and goal["met"] == (goal["got"] >= 1.5)
    check_numbers(json.loads((tmp_path / "train_speed.json").read_text()))
    md = (tmp_path / "train_speed.md").read_text()
    assert "Data pipeline alone" in md and "| 64x48 | 1 | 2 |" in md and "vs transpose_r_a3 default step" in md


def test_missing_lspet_is_noted_and_bf16_runs_only_at_its_sizes(tmp_path) -> None:
    res = bench.run_train_benchmark(SMALL, levers=["bf16"], bf16_sizes=[(128, 96)], pipeline=PipelinePlan(tmp_path),
                                    out=None, progress=None)
    assert res["pipeline"] == [] and "LSPET not found" in res["note"] and str(tmp_path) in res["note"]
    ref, default, bf16 = res["rows"]
    assert ref["median_s"] > 0 and default["median_s"] > 0
    assert "bf16_sizes" in bf16["skipped"] and res["bf16_sizes"] == ["128x96"]


def test_goals() -> None:
    rows = [
        {"model": "transpose_r_a4", "input": "128x96", "config": "default", "speedup_vs_reference": 2.3},
        {"model": "transpose_r_a4", "input": "256x192", "config": "default", "speedup_vs_reference": 1.0},
    ]
    pipeline = [{"input": "128x96", "ratio_to_default_step": {"transpose_r_a4": 40.0, "transpose_h_s": 1.2}}]
    plan = bench.TrainBenchPlan()  # the default goals: r_a4 at 128x96 2x the reference, the pipeline 1.5x the step
    goals = train_report.judge_goals(rows, pipeline, plan.step_goals, plan.pipeline_goal)
    assert [(g["model"], g["input"], g["met"]) for g in goals] == [
        ("transpose_r_a4", "128x96", True), ("transpose_h_s", "128x96", False), ("transpose_r_a4", "128x96", True)]
    text = train_report.goal_text(goals)
    assert "2.30x (met)" in text and "1.20x (MISSED)" in text
    assert train_report.judge_goals(rows[1:], [], plan.step_goals, plan.pipeline_goal)[0]["met"] is None  # not timed


def test_the_report_judges_the_goals_it_is_given() -> None:
    goals = (Goal("transpose_r_a3", "64x48", 0.001), Goal("transpose_h_s", "64x48", 2.0))
    res = bench.run_train_benchmark(SMALL, levers=[], step_goals=goals, pipeline=None, out=None, progress=None)
    mine, untimed = res["goals"]
    assert (mine["model"], mine["input"], mine["need"], mine["met"]) == ("transpose_r_a3", "64x48", 0.001, True)
    assert untimed["model"] == "transpose_h_s" and untimed["got"] is None and untimed["met"] is None
    md = "\n".join(train_report.markdown(res))
    assert "- goal: default step vs reference step >= 0.001x for transpose_r_a3 at 64x48: " in md
    assert "for transpose_h_s" not in md
    res = bench.run_train_benchmark(SMALL, levers=[], step_goals=(), pipeline=None, out=None, progress=None)
    assert res["goals"] == [] and "Goals:" not in "\n".join(train_report.markdown(res))


def test_configuration_names_and_the_default() -> None:
    default = levers.default_levers()
    assert "fused" in default and "channels_last" in default and "compile" not in default
    from tpose.engine.train import resolve_amp

    assert ("bf16" in default) == (resolve_amp("auto", torch.device("cpu")) == torch.bfloat16)
    assert levers.parse_config("reference").levers == frozenset()
    assert levers.parse_config("default+bf16", frozenset({"fused"})).levers == {"fused", "bf16"}
    names = [c.name for c in levers.configurations(["fused+channels_last", "bf16", "bf16"], frozenset(
        {"fused", "channels_last"}))]
    assert names == ["reference", "default", "bf16"]
    with pytest.raises(ValueError, match="unknown lever 'fp8' in 'bf16\\+fp8'"):
        levers.parse_config("bf16+fp8")
    plan = StepPlan(steps=3, rounds=4, warmup=2, bf16_steps=1, bf16_rounds=2, bf16_is_slow=True)
    assert plan.shape(levers.parse_config("bf16")) == (0, 1, 2)
    assert plan.shape(levers.parse_config("channels_last")) == (2, 3, 4)
    fast = StepPlan(steps=3, rounds=4, warmup=2, bf16_is_slow=False)
    assert fast.shape(levers.parse_config("bf16")) == (2, 3, 4)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="unknown models"):
        bench.run_train_benchmark(models=["transpose_x"], out=None, progress=None)
    with pytest.raises(ValueError, match="multiples of 4"):
        bench.run_train_benchmark(models=["transpose_r_a3"], sizes=[(130, 96)], out=None, progress=None)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        bench.run_train_benchmark(SMALL, timing=StepPlan(steps=0), out=None, progress=None)
    with pytest.raises(ValueError, match="unknown lever"):
        bench.run_train_benchmark(SMALL, levers=["fast"], out=None, progress=None)
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--sizes", "256"])
    for goal in ("transpose_r_a4@128x96", "transpose_r_a4:2", "transpose_r_a4@128:2", "transpose_r_a4@128x96:0"):
        with pytest.raises(SystemExit):
            bench.build_parser().parse_args(["--goal", goal])


def test_command_line_options_reach_the_benchmark(monkeypatch, tmp_path) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(bench, "run_train_benchmark", lambda plan, **kw: seen.update(kw, plan=plan) or {"files": []})
    argv = ["--models", "transpose_r_a4", "--sizes", "128x96", "256x192", "--batch", "8", "--steps", "2",
            "--rounds", "4", "--levers", "bf16", "default+compile", "--threads", "2", "--out", str(tmp_path),
            "--bf16-steps", "2", "--bf16-rounds", "3", "--bf16-sizes", "128x96", "--compile-timeout", "60",
            "--no-data", "--workers", "1"]
    assert bench.main(argv) == 0
    plan, timing = seen["plan"], seen["plan"].timing
    assert plan.models == ("transpose_r_a4",) and plan.sizes == ((128, 96), (256, 192))
    assert (plan.batch, timing.steps, timing.rounds, plan.threads) == (8, 2, 4, 2)
    assert plan.levers == ("bf16", "default+compile") and seen["out"] == str(tmp_path)
    assert (timing.bf16_steps, timing.bf16_rounds, timing.compile_timeout) == (2, 3, 60.0)
    assert plan.bf16_sizes == ((128, 96),)
    assert plan.pipeline is None
    assert seen["command"].startswith("python benchmarks/bench_train.py --models transpose_r_a4 --sizes 128x96")
    # the defaults: the data pipeline on ../shared/data/lspet, the project's goals
    assert bench.main(["--out", str(tmp_path)]) == 0
    assert seen["plan"] == bench.TrainBenchPlan()
    assert seen["plan"].pipeline.lspet == Path("..") / "shared" / "data" / "lspet"
    assert seen["plan"].step_goals == (Goal("transpose_r_a4", "128x96", 2.0),) and seen["plan"].pipeline_goal == 1.5
    assert bench.main(["--workers", "1", "--lspet", str(tmp_path), "--data-samples", "8", "--data-batches", "2",
                       "--cache-dir", str(tmp_path / "c")]) == 0
    assert seen["plan"].pipeline == PipelinePlan(tmp_path, workers=1, samples=8, batches=2, cache_dir=tmp_path / "c")
    # goals given on the command line replace the defaults; --no-goals judges none
    assert bench.main(["--goal", "transpose_h_s@256X192:1.5", "--goal", "transpose_r_a4@128x96:3",
                       "--pipeline-goal", "10"]) == 0
    assert seen["plan"].step_goals == (Goal("transpose_h_s", "256x192", 1.5), Goal("transpose_r_a4", "128x96", 3.0))
    assert seen["plan"].pipeline_goal == 10.0
    assert bench.main(["--goal", "transpose_h_s@256x192:1.5", "--no-goals"]) == 0
    assert seen["plan"].step_goals == () and seen["plan"].pipeline_goal is None


def test_time_limit_and_cpu_features() -> None:
    start = time.perf_counter()
    with pytest.raises(common.TimeLimitExceeded, match="longer than 0.2 s"):
        with common.time_limit(0.2):
            while True:
                try:  # a library's broad except must not swallow the limit
                    time.sleep(0.01)
                except Exception:
                    pass
    assert time.perf_counter() - start < 5
    with common.time_limit(None):
        pass
    with common.time_limit(5):
        pass
    time.sleep(0.01)  # the timer was cancelled on leaving the block
    feats = machine.cpu_features()
    assert all(isinstance(v, bool) for v in feats.values())
    if Path("/proc/cpuinfo").is_file():
        assert set(feats) >= {"avx2", "avx512_bf16", "amx_bf16"}


def test_levers_run_only_at_the_lever_at_pairs() -> None:
    res = bench.run_train_benchmark(SMALL, models=["transpose_r_a3", "transpose_h_s"],
                                    model_overrides={**TINY, "num_layers": 1}, levers=["fast_dropout"],
                                    lever_at=[("transpose_r_a3", (64, 48))], pipeline=None, out=None, progress=None)
    rows = {(r["model"], r["config"]): r for r in res["rows"]}
    assert rows[("transpose_r_a3", "fast_dropout")]["median_s"] > 0
    assert rows[("transpose_h_s", "fast_dropout")]["skipped"] == "levers timed only at lever_at"
    assert rows[("transpose_h_s", "reference")]["median_s"] > 0 and rows[("transpose_h_s", "default")]["median_s"] > 0
    assert res["lever_at"] == ["transpose_r_a3@64x48"]
    assert bench.parse_model_size("transpose_h_s@256x192") == ("transpose_h_s", (256, 192))
    with pytest.raises(Exception, match="MODEL@HxW"):
        bench.parse_model_size("256x192")


def test_reference_uses_pytorch_dropout_and_default_the_cheap_mask(monkeypatch) -> None:
    seen: list[bool] = []
    real = levers.set_fast_dropout
    monkeypatch.setattr(levers, "set_fast_dropout", lambda m, on: seen.append(on) or real(m, on))
    bench.run_train_benchmark(SMALL, levers=[], pipeline=None, out=None, progress=None)
    assert seen == [False, "fast_dropout" in levers.default_levers()]
    assert "fast_dropout" in levers.default_levers()
