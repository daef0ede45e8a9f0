"""Which nodes to keep in float: greedy search guided by per-node output error until the PCK loss fits."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...utils.ort import session_options
from .gate import AccuracyGate, ValidationSet, measure_pck
from .graph import exclusion_groups, load_graph, quantize_onnx
from .settings import Int8Options, QuantSettings

# ------------------------------------------------------------------------------------------------ search


def node_errors(
    fp32_path: str | Path, int8_path: str | Path, crops: np.ndarray, threads: int | None = None
) -> dict[str, float]:
    """Relative output error ``||int8 - fp32|| / ||fp32||`` of every quantized compute node on ``crops``.

    Both graphs are run unoptimised with each node's output added as a graph output (QDQ keeps the float
    graph's tensor names), so the error of each tensor is seen where it arises. The search uses the rise
    of this error over a node's inputs to pick single nodes to keep in float once the groups are spent.
    """
    import onnx
    import onnxruntime as ort


    fp = load_graph(fp32_path)
    q = load_graph(int8_path)
    q_outputs = {o for n in q.graph.node for o in n.output}
    kinds = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Softmax", "Add", "LayerNormalization")
    wanted = [(n.name, n.output[0]) for n in fp.graph.node if n.op_type in kinds and n.output[0] in q_outputs]
    results = {}
    for tag, proto in (("fp32", fp), ("int8", q)):
        model = copy.deepcopy(proto)
        have = {o.name for o in model.graph.output}
        for _, tensor in wanted:
            if tensor not in have:
                model.graph.output.append(onnx.ValueInfoProto(name=tensor))
        opts = session_options(threads, optimization="disable")
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [t for _, t in wanted]
        results[tag] = sess.run(names, {sess.get_inputs()[0].name: np.ascontiguousarray(crops, np.float32)})
    out = {}
    for (node, _), a, b in zip(wanted, results["fp32"], results["int8"], strict=True):
        denom = float(np.linalg.norm(a)) or 1.0
        out[node] = float(np.linalg.norm(np.asarray(b, np.float64) - a) / denom)
    return out


def _error_rise(fp32_path: str | Path, errors: Mapping[str, float]) -> list[tuple[str, float]]:
    """Nodes by how much error they add over the worst of the nodes feeding them (largest first)."""
    graph = load_graph(fp32_path).graph
    producer = {o: n for n in graph.node for o in n.output}

    def upstream(node: Any, seen: set[str]) -> float:
        worst = 0.0
        for i in node.input:
            p = producer.get(i)
            if p is None or p.name in seen:
                continue
            seen.add(p.name)
            worst = max(worst, errors[p.name] if p.name in errors else upstream(p, seen))
        return worst

    rise = [(n.name, errors[n.name] - upstream(n, set())) for n in graph.node if n.name in errors]
    return sorted(rise, key=lambda t: -t[1])


@dataclass
class SearchStep:
    """One try of the search: what was kept in float and what it measured."""

    kept_float: list[str]
    added: str
    pck_int8: dict[str, float]
    worst_loss: float
    passed: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_float_nodes(
    model_path: str | Path,
    out_path: str | Path,
    crops: np.ndarray,
    validation: Sequence[ValidationSet],
    fp32_pck: Mapping[str, float],
    options: Int8Options | None = None,
    calibration_cache: str | Path | None = None,
    progress: Any = None,
) -> tuple[QuantSettings, AccuracyGate, list[SearchStep]]:
    """Quantize, measure, and keep more nodes in float until every validation set loses at most
    ``options.tolerance``, starting from the recipe ``options.settings``.

    Order: everything quantized; then ``options.groups`` of :func:`exclusion_groups` one after another
    (cumulative); then single nodes by the output error they add (:func:`node_errors`), doubling the
    number kept float each step up to ``options.max_single_nodes``. With ``options.prune``, groups added before
    the one that passed are re-quantized one at a time where the gate still passes. ``out_path`` ends with the
    chosen graph. The gate is met or the last (most float) try is returned with ``passed`` False.
    """
    options = options or Int8Options()
    settings, tolerance, threads = options.settings, options.tolerance, options.threads
    say = progress or (lambda _msg: None)
    available = exclusion_groups(model_path)
    unknown = [g for g in options.groups if g not in available]
    if unknown:
        raise ValueError(f"unknown exclusion groups {unknown}; known: {list(available)}")
    steps: list[SearchStep] = []

    def attempt(exclude: Sequence[str], added: str) -> AccuracyGate:
        t0 = time.perf_counter()
        trial = replace(settings, exclude_nodes=tuple(dict.fromkeys([*settings.exclude_nodes, *exclude])))
        quantize_onnx(model_path, out_path, crops, trial, calibration_cache)
        got = measure_pck(out_path, validation, threads)
        gate = AccuracyGate(dict(fp32_pck), got, {v.name: v.num_persons for v in validation}, tolerance)
        steps.append(SearchStep(list(trial.exclude_nodes), added, got, gate.worst_loss, gate.passed,
                                round(time.perf_counter() - t0, 1)))
        say(f"  float: {added or 'none'} -> worst loss {gate.worst_loss:+.4f} ({'pass' if gate.passed else 'fail'})")
        return gate

    kept: list[str] = list(dict.fromkeys(n for g in settings.float_groups for n in available[g]))
    settings = replace(settings, float_groups=())  # now listed in ``kept``, so that the report names them
    added_groups: list[str] = []
    gate = attempt(kept, "")
    for group in options.groups:
        if gate.passed:
            break
        nodes = [n for n in available[group] if n not in kept]
        if not nodes:
            continue
        kept += nodes
        added_groups.append(group)
        gate = attempt(kept, f"group {group}")
    count = 1
    while not gate.passed and count <= options.max_single_nodes:
        rise = [n for n, _ in _error_rise(model_path, node_errors(model_path, out_path, crops[:16], threads))
                if n not in kept]
        if not rise:
            break
        chosen = rise[:count]
        kept += chosen
        gate = attempt(kept, "nodes " + ", ".join(chosen))
        count *= 2
    if gate.passed and options.prune and len(added_groups) > 1:
        for group in added_groups[:-1]:
            trial = [n for n in kept if n not in available[group]]
            trial_gate = attempt(trial, f"re-quantize group {group}")
            if trial_gate.passed:
                kept, gate = trial, trial_gate
    final = replace(settings, exclude_nodes=tuple(dict.fromkeys([*settings.exclude_nodes, *kept])))
    if steps[-1].kept_float != list(final.exclude_nodes):  # the last try was a failed prune: rebuild the chosen one
        quantize_onnx(model_path, out_path, crops, final, calibration_cache)
    return final, gate, steps
