"""Build the int8 model that ships beside the shipped weights: run it whenever those weights change.

    python scripts/build_shipped_int8.py               # everything (824 s on 2 heavily loaded cores)
    python scripts/build_shipped_int8.py --reuse-int8  # keep the quantization, redo the real-time gate

What it does, in order: export the shipped ``.safetensors`` to an fp32 ONNX file (temporary); quantize it
with ``tpose export --int8``'s pipeline on the training crops of ``configs/int8_r_a4_128x96.yaml`` (its own
gate: PCK@0.2 with the flip test, fp32 ONNX vs int8, on LSPET val, the MPII split and the COCO excerpt);
then the gate the real-time path needs: PCK@0.2 without the flip test of the int8 file against today's
real-time path (the shipped weights in PyTorch, fp32, no flip test) on LSPET validation and the MPII split,
at most 0.005 lost on each. Only a file that passes both gates replaces
``src/tpose/weights/<stem>_int8.onnx``; its ``tpose`` metadata records the SHA-256 of the weights
(checked when loaded, ``tpose.weights.int8.check_int8``) and both measurements. A JSON report goes to
``benchmarks/results/shipped_int8.json``. Exit status 1 when a gate fails (the old file is then kept).
Needs ../shared/data (LSPET, the MPII subset, COCO excerpt).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tpose.data.keypoint_sets import LIMB_JOINTS
from tpose.engine.evaluate import evaluate
from tpose.engine.options import EvalSettings
from tpose.engine.train_config import read_yaml
from tpose.export.int8 import Int8Options, load_validation, quantize_model
from tpose.export.onnx_export import export_onnx, set_metadata_props
from tpose.factory import load_pose_model, shipped_weights
from tpose.models.onnx_model import OnnxPoseModel
from tpose.weights.download import sha256_of
from tpose.weights.int8 import REALTIME_GATE_KEY, WEIGHTS_HASH_KEY, int8_path, read_int8_metadata

ROOT = Path(__file__).resolve().parents[1]
GATE_SETS = ("lspet-val", "mpii-val")  # the sets the real-time gate is decided on
TOLERANCE = 0.005


def pck_no_flip(net, keypoint_set, sets) -> dict[str, float]:
    """PCK@0.2 over the 12 limb joints without the flip test (the real-time path's setting)."""
    settings = EvalSettings(flip_test=False, joint_subset=LIMB_JOINTS, pck_threshold=0.2)
    out = {}
    for vs in sets:
        report = evaluate(net, vs.batches, keypoint_set, settings, data_keypoint_set=vs.keypoint_set,
                          metrics=("pck",), progress=False)
        out[vs.name] = float(report.metrics["PCK@0.2"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="weights file (default: the shipped ones)")
    p.add_argument("--data", default=str(ROOT / "configs/int8_r_a4_128x96.yaml"), help="int8 data YAML")
    p.add_argument("--out", default=None, help="int8 file (default: <stem>_int8.onnx beside the weights)")
    p.add_argument("--report", default=str(ROOT / "benchmarks/results/shipped_int8.json"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--reuse-int8", action="store_true",
                   help="keep the existing int8 file's quantization; redo the real-time gate and its metadata")
    args = p.parse_args(argv)
    started = time.perf_counter()
    weights = Path(args.weights) if args.weights else shipped_weights()
    out = Path(args.out) if args.out else int8_path(weights)
    data = read_yaml((Path(args.data)).read_text()) or {}
    loaded = load_pose_model(weights, backend="torch")
    sha = sha256_of(weights)
    print(f"weights {weights} (sha256 {sha[:12]}...) -> {out}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tpose-shipped-int8-") as tmp:
        fp32 = export_onnx(loaded.model, Path(tmp) / f"{weights.stem}.onnx", keypoint_set=loaded.keypoint_set)
        candidate = Path(tmp) / out.name
        if args.reuse_int8:  # only the real-time gate and the metadata again (the quantization is kept)
            if read_int8_metadata(out).get(WEIGHTS_HASH_KEY) != sha:
                raise SystemExit(f"--reuse-int8: {out} was not made from {weights} (hash differs): run without it")
            shutil.copyfile(out, candidate)
            quantization = read_int8_metadata(candidate).get("quantization") or {}
            export_gate = quantization.get("accuracy") or {}
            export_passed = bool(export_gate.get("passed"))
        else:
            options = Int8Options.from_data(data, threads=args.threads)
            report = quantize_model(fp32, candidate, calibration=data.get("calibration"),
                                    validation=data.get("validation"), options=options,
                                    progress=lambda m: print(m, flush=True))
            print(report.summary(), flush=True)
            quantization = report.to_dict()
            export_gate, export_passed = quantization["accuracy"], bool(report.passed)
        specs = [v for v in data.get("validation") or [] if v.get("name") in GATE_SETS]
        sets = load_validation(specs, loaded.input_size)
        if sorted(v.get("name") for v in specs) != sorted(GATE_SETS):
            raise SystemExit(f"{args.data}: validation needs the sets {GATE_SETS} for the real-time gate")
        short = {s.name: s.name.split(" ")[0] for s in sets}  # "lspet-val (images 9001-10000)" -> "lspet-val"
        base = {short[k]: v for k, v in pck_no_flip(loaded.model, loaded.keypoint_set, sets).items()}
        int8_net = OnnxPoseModel(candidate, threads=args.threads)
        got = {short[k]: v for k, v in pck_no_flip(int8_net, int8_net.keypoint_set, sets).items()}
        loss = {k: base[k] - got[k] for k in base}
        passed = all(v <= TOLERANCE + 1e-12 for v in loss.values())
        gate = {"metric": "PCK@0.2, 12 limb joints, no flip test, DARK, annotated-joint boxes",
                "reference": "shipped weights, PyTorch fp32, no flip test (the real-time path without int8)",
                "pck_fp32": base, "pck_int8": got, "loss": loss, "tolerance": TOLERANCE, "passed": passed,
                "persons": {short[s.name]: s.num_persons for s in sets}}
        for k in base:
            print(f"real-time gate {k}: fp32 {base[k]:.4f}  int8 {got[k]:.4f}  loss {loss[k]:+.4f}", flush=True)
        info = read_int8_metadata(candidate)
        info[WEIGHTS_HASH_KEY] = sha
        info["weights_name"] = weights.name
        info[REALTIME_GATE_KEY] = gate
        info["built_by"] = "python scripts/build_shipped_int8.py"
        set_metadata_props(candidate, {"tpose": json.dumps(info, default=str)})
        ok = export_passed and passed
        if ok:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(candidate, out)
    seconds = round(time.perf_counter() - started, 1)
    result = {"weights": weights.name, "weights_sha256": sha, "int8": out.name, "installed": ok,
              "bytes": out.stat().st_size if out.is_file() else None, "export_gate": export_gate,
              "realtime_gate": gate, "settings": quantization.get("settings"),
              "calibration": quantization.get("calibration"), "machine": quantization.get("machine"),
              "seconds": seconds,
              "command": "python scripts/build_shipped_int8.py " + " ".join(argv or sys.argv[1:])}
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"{'written' if ok else 'NOT written (a gate failed)'}: {out} in {seconds:.0f} s; report {args.report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
