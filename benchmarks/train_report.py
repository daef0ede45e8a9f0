"""The training benchmark's report: the goals judged on its rows, and its Markdown.

Two kinds of goal: a step goal (``Goal(model, "HxW", need)``: the default step at least ``need`` x as
fast as the reference step for that model and input size) and the pipeline goal (the data pipeline's
images/s at least that many times the default step's, for every model and size timed with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from common import fmt, markdown_table
from goals import Goal, goal_lines, goals_section, judged, measured
from report import load_average_text, measured_on
from step_timing import LEVER_AT_SKIP

STEP_VS_REFERENCE = "default step vs reference step"
PIPELINE_VS_STEP = "data pipeline vs default step"


def judge_goals(
    rows: Sequence[Mapping[str, Any]],
    pipeline: Sequence[Mapping[str, Any]],
    step_goals: Sequence[Goal],
    pipeline_goal: float | None,
) -> list[dict[str, Any]]:
    """Each step goal (None measured where its pair was not timed), then the pipeline goal for every timed pair."""
    goals = []
    for goal in step_goals:
        got = measured(rows, {"model": goal.model, "input": goal.at, "config": "default"})
        goals.append(judged({"goal": STEP_VS_REFERENCE, "model": goal.model, "input": goal.at}, goal.need, got))
    if pipeline_goal is not None:
        for res in pipeline:
            for model, ratio in sorted(res.get("ratio_to_default_step", {}).items()):
                goals.append(judged({"goal": PIPELINE_VS_STEP, "model": model, "input": res["input"]}, pipeline_goal,
                                    ratio))
    return goals


def _describe(goal: Mapping[str, Any]) -> str:
    return f"goal: {goal['goal']} >= {goal['need']}x for {goal['model']} at {goal['input']}"


def goal_text(goals: Sequence[Mapping[str, Any]]) -> str:
    """One line per measured goal: what it asks, what was measured, met or MISSED."""
    return "\n".join(goal_lines(goals, _describe))


def markdown(results: Mapping[str, Any]) -> list[str]:
    """The sections of ``train_speed.md``: how it was measured, the step table, failures, the pipeline, goals."""
    m = results["machine"]
    feats = ", ".join(k for k, v in (m.get("cpu_features") or {}).items() if v) or "unknown"
    bf16 = ""
    if results["bf16_is_slow"]:
        bf16 = (f" (bf16, slow here: {min(results['steps'], results['bf16_steps'])} step(s) in "
                f"{min(results['rounds'], results['bf16_rounds'])} round(s), no warm-up)")
    head = [
        measured_on(m, feats, f"torch CPU capability {m.get('cpu_capability')}")
        + f", torch {m['torch']}, {results['threads']} threads. Batch "
        f"{results['batch']}; per configuration {results['warmup']} untimed warm-up step(s), then "
        f"{results['rounds']} interleaved round(s) of {results['steps']} step(s){bf16}; median step time over "
        f"rounds. {load_average_text(m)} Took {results['seconds']:.0f} s.",
        f"`resolve_amp(\"auto\", cpu)` here: {results['resolve_amp_auto_cpu'] or 'None (fp32)'} "
        f"(mkldnn bf16 supported: {m.get('mkldnn_bf16_supported')}); so **default** = "
        f"{' + '.join(results['default_levers'])}.",
        f"Command: `{results['command']}`",
    ]
    if results.get("model_overrides"):
        head.append(f"Model overrides: `{results['model_overrides']}`")
    if results.get("note"):
        head.append(f"**Note:** {results['note']}")
    if results.get("lever_at"):
        where = ", ".join(results["lever_at"])
        head.append(f"Configurations besides reference and default were timed only at {where}.")
    headers = ["model", "input", "config", "levers", "ms/step", "img/s", "x ref", "rounds", "spread", "compile (s)"]
    table = []
    for r in results["rows"]:
        levers = " + ".join(r["levers"]) or "–"
        if r.get("skipped") == LEVER_AT_SKIP:
            continue
        if "median_s" not in r:
            why = r.get("skipped") and "skipped: " + r["skipped"] or "failed: " + r.get("error", "").splitlines()[0]
            table.append([r["model"], r["input"], r["config"], levers, why[:160], "", "", "", "", ""])
            continue
        table.append([
            r["model"], r["input"], r["config"], levers, fmt(r["ms_per_step"]), fmt(r["images_per_s"], 2),
            "" if r.get("speedup_vs_reference") is None else f"{r['speedup_vs_reference']:.2f}",
            f"{r['n']} x {r['steps_per_round']}", f"{100 * r['spread']:.0f}%", fmt(r.get("compile_s")),
        ])
    sections = ["\n\n".join(head), markdown_table(headers, table)]
    errors = [r for r in results["rows"] if r.get("error")]
    if errors:
        sections.append("Failures:\n\n" + "\n".join(
            f"- {r['model']} {r['input']} {r['config']}: `{r['error'].splitlines()[0][:300]}`" for r in errors))
    if results["pipeline"]:
        models = sorted({k for p in results["pipeline"] for k in p.get("ratio_to_default_step", {})})
        p_headers = ["input", "workers", "batch", "img/s", "start-up (s)", *[f"vs {n} default step" for n in models]]
        p_rows = [[p["input"], p["workers"], p["batch"], fmt(p["images_per_s"]), fmt(p["startup_s"]),
                   *[("" if n not in p.get("ratio_to_default_step", {}) else f"{p['ratio_to_default_step'][n]:.1f}x")
                     for n in models]] for p in results["pipeline"]]
        sections.append(
            f"Data pipeline alone: TopDownDataset (train=True, released augmentation) on the first "
            f"{results['pipeline'][0]['samples']} LSPET images with the crop cache (max side "
            f"{results['pipeline'][0]['cache_size']}, JPEG quality {results['pipeline'][0]['cache_quality']}), "
            f"DataLoader with spawned workers, median of {results['rounds']} run(s) of "
            f"{results['pipeline'][0]['batches_per_round']} batches after start-up. In training the workers "
            f"share the cores with the step, so the ratio is an upper bound.\n\n" + markdown_table(p_headers, p_rows))
    sections.append(
        "Configurations: **reference** = the released formulation (fp32, eager, NCHW; our model called with "
        "return_attention=True: explicit softmax(QK^T/sqrt(e)) with attention dropout, head-averaged maps kept and "
        "discarded); **channels_last** = model and input in channels_last; **fused** = model(x), "
        "F.scaled_dot_product_attention (on a CPU with attention dropout > 0 it runs the unfused math kernel); "
        "**fast_dropout** = dropout masks from 16 random bits per element (tpose.models.dropout) instead of "
        "PyTorch's per-element Bernoulli draw; with fused and attention dropout > 0 the attention runs the explicit "
        "softmax with that mask; **attn_dropout0** = attention-weight dropout 0 (a recipe change; lets fused run "
        "the flash kernel); "
        "**bf16** = torch.autocast(\"cpu\", bfloat16) around the forward; **compile** = torch.compile, compile "
        "(s) = first step minus the median step; **default** = what `tpose train` does here. A step = forward, "
        "masked MSE, backward, Adam step on random data.")
    sections.append(goals_section("Goals:", goal_lines(results["goals"], _describe)))
    return sections

