"""PCK@0.2 of weights on the three validation sets of docs/results.md, flip test on and off.

    python scripts/evaluate_weights.py WEIGHTS [--out docs/results/NAME.json] [--data ../shared/data] [--cut-too]

LSPET validation (im09001-im10000), the MPII validation split (configs/splits/mpii-subset-val.txt) and the
COCO excerpt (coco-mini, 86 persons), each over the 12 limb joints, boxes from the annotated joints, DARK;
also LSPET over all 14 joints (flip test only). With ``--detector``, also end to end (flip test only): the
predictor finds the people (YOLOX-Nano), annotated persons are matched at IoU >= 0.5, a missed one scores 0
(``tpose eval --detector``). With ``--cut-too``, also every limb row with each upright person's photo cut at
the chest and just below the hips (flip test only; ``tpose eval --cut-at``): persons cut off by the lower edge,
as everyday photos show them and LSP/LSPET almost never do; each beside its control (``--cut-keep-pixels``: the
same boxes and scored joints, the pixels below left in).
Prints a markdown table and writes the reports as one JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from tpose.data import LIMB_JOINTS
from tpose.data.cutoff import CUT_LEVELS
from tpose.engine.eval_run import run_eval
from tpose.engine.options import EvalDataSpec, EvalOptions, EvalSettings
from tpose.inference.end_to_end import run_detected_eval
from tpose.inference.options import DetectorOptions

ROOT = Path(__file__).resolve().parents[1]


def evaluations(data: Path) -> list[tuple[str, EvalDataSpec, str | None]]:
    """(name, data, metric) of each row: PCK everywhere (None: LSPET's default, PCK)."""
    mpii = data / "mpii-subset"
    coco = data / "coco-mini"
    return [
        ("LSPET val, 12 limbs", EvalDataSpec("lspet", root=data / "lspet"), "pck"),
        ("LSPET val, all 14", EvalDataSpec("lspet", root=data / "lspet"), None),
        ("MPII val split, 12 limbs", EvalDataSpec("coco", ann_file=mpii / "annotations/person_keypoints_mpii16.json",
                                                  image_dir=mpii / "images",
                                                  image_ids=ROOT / "configs/splits/mpii-subset-val.txt"), "pck"),
        ("COCO excerpt, 12 limbs", EvalDataSpec("coco", ann_file=coco / "annotations/person_keypoints_train2017.json",
                                                image_dir=coco / "train2017"), "pck"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--out", type=Path, help="JSON file for the reports")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--no-flip-too", action="store_true", help="also evaluate without the flip test")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--cut-too", action="store_true",
                        help="also the limb rows with the photos cut at the chest and below the hips (flip test)")
    parser.add_argument("--cut-only", action="store_true", help="only the rows of --cut-too")
    parser.add_argument("--detector", nargs="?", const="auto",
                        help="also end to end with this YOLOX file (default: the one tpose finds)")
    args = parser.parse_args()
    rows, reports = [], {}
    for name, spec, metric in [] if args.cut_only else evaluations(args.data):
        for flip in (True, False) if args.no_flip_too and "all 14" not in name else (True,):
            started = time.perf_counter()
            settings = EvalSettings(flip_test=flip, precision=args.precision,
                                    joint_subset=LIMB_JOINTS if "12 limbs" in name else None)
            options = EvalOptions(settings=settings, metric=metric, progress=False)
            report = run_eval(args.weights, spec, options)
            value = next(v for k, v in report["metrics"].items() if k.startswith("PCK"))
            key = f"{name}, {'flip' if flip else 'no flip'}"
            seconds = round(time.perf_counter() - started, 1)
            reports[key] = {"PCK@0.2": value, "persons": report["num_persons"],
                            "per_joint": report.get("per_joint_pck"), "seconds": seconds}
            rows.append(f"| {key} | {report['num_persons']} | {value:.4f} | GT |")
            print(rows[-1], flush=True)
            if args.detector is None or "all 14" in name or not flip:  # end to end: the flip-test protocol only
                continue
            started = time.perf_counter()
            found = run_detected_eval(args.weights, spec, options, DetectorOptions(args.detector))
            m = found["metrics"]
            key_e2e = f"{key}, detected boxes"
            reports[key_e2e] = {"PCK@0.2": m["PCK@0.2"], "PCK@0.2 of matched": m["PCK@0.2 of matched"],
                                "recall": m["recall"], "persons": found["num_persons"],
                                "per_joint": found["per_joint_pck"],
                                "seconds": round(time.perf_counter() - started, 1)}
            rows.append(f"| {key} | {found['num_persons']} | {m['PCK@0.2']:.4f} | detected: recall "
                        f"{m['recall']:.3f}, matched {m['PCK@0.2 of matched']:.4f} |")
            print(rows[-1], flush=True)
    for name, spec, metric in evaluations(args.data) if args.cut_too or args.cut_only else []:
        for cut, keep in ((c, k) for c in CUT_LEVELS for k in (False, True)) if "12 limbs" in name else ():
            started = time.perf_counter()
            options = EvalOptions(settings=EvalSettings(precision=args.precision, joint_subset=LIMB_JOINTS),
                                  metric=metric, progress=False)
            report = run_eval(args.weights, replace(spec, cut_at=cut, cut_keep_pixels=keep), options)
            key = f"{name}, cut at the {cut}{', pixels kept' if keep else ''}, flip"
            reports[key] = {"PCK@0.2": report["metrics"]["PCK@0.2"], "persons": report["num_persons"],
                            "cut": report["cut"], "per_joint": report.get("per_joint_pck"),
                            "seconds": round(time.perf_counter() - started, 1)}
            rows.append(f"| {key} | {report['num_persons']} | {report['metrics']['PCK@0.2']:.4f} | GT, cut "
                        f"{'(control: pixels kept)' if keep else ''}|")
            print(rows[-1], flush=True)
    print("\n| data | persons | PCK@0.2 | boxes |\n|---|---|---|---|\n" + "\n".join(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"weights": args.weights, "reports": reports}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
