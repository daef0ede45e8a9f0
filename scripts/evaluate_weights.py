"""PCK@0.2 of weights on the three validation sets of docs/results.md, flip test on and off.

    python scripts/evaluate_weights.py WEIGHTS [--out docs/results/NAME.json] [--data ../shared/data]

LSPET validation (im09001-im10000), the MPII validation split (configs/splits/mpii-subset-val.txt) and the
COCO excerpt (coco-mini, 86 persons), each over the 12 limb joints, boxes from the annotated joints, DARK;
also LSPET over all 14 joints (flip test only). With ``--detector``, also end to end (flip test only): the
predictor finds the people (YOLOX-Nano), annotated persons are matched at IoU >= 0.5, a missed one scores 0
(``tpose eval --detector``).
Prints a markdown table and writes the reports as one JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tpose.engine.eval_run import run_eval
from tpose.inference.end_to_end import run_detected_eval

ROOT = Path(__file__).resolve().parents[1]


def evaluations(data: Path) -> list[tuple[str, dict]]:
    mpii = data / "mpii-subset"
    coco = data / "coco-mini"
    return [
        ("LSPET val, 12 limbs", {"data": "lspet", "root": data / "lspet", "limbs_only": True}),
        ("LSPET val, all 14", {"data": "lspet", "root": data / "lspet"}),
        ("MPII val split, 12 limbs", {"data": "coco", "ann_file": mpii / "annotations/person_keypoints_mpii16.json",
                                      "image_dir": mpii / "images", "limbs_only": True, "metric": "pck",
                                      "image_ids": ROOT / "configs/splits/mpii-subset-val.txt"}),
        ("COCO excerpt, 12 limbs", {"data": "coco", "ann_file": coco / "annotations/person_keypoints_train2017.json",
                                    "image_dir": coco / "train2017", "limbs_only": True, "metric": "pck"}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--out", type=Path, help="JSON file for the reports")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--no-flip-too", action="store_true", help="also evaluate without the flip test")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--detector", nargs="?", const="auto",
                        help="also end to end with this YOLOX file (default: the one tpose finds)")
    args = parser.parse_args()
    rows, reports = [], {}
    for name, spec in evaluations(args.data):
        for flip in (True, False) if args.no_flip_too and "all 14" not in name else (True,):
            started = time.perf_counter()
            report = run_eval(args.weights, flip_test=flip, progress=False, precision=args.precision, **spec)
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
            spec_e2e = {k: v for k, v in spec.items() if k != "metric"}
            found = run_detected_eval(args.weights, detector=args.detector, flip_test=flip, progress=False,
                                      precision=args.precision, **spec_e2e)
            m = found["metrics"]
            key_e2e = f"{key}, detected boxes"
            reports[key_e2e] = {"PCK@0.2": m["PCK@0.2"], "PCK@0.2 of matched": m["PCK@0.2 of matched"],
                                "recall": m["recall"], "persons": found["num_persons"],
                                "per_joint": found["per_joint_pck"],
                                "seconds": round(time.perf_counter() - started, 1)}
            rows.append(f"| {key} | {found['num_persons']} | {m['PCK@0.2']:.4f} | detected: recall "
                        f"{m['recall']:.3f}, matched {m['PCK@0.2 of matched']:.4f} |")
            print(rows[-1], flush=True)
    print("\n| data | persons | PCK@0.2 | boxes |\n|---|---|---|---|\n" + "\n".join(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"weights": args.weights, "reports": reports}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
