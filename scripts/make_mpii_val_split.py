"""Carve the MPII validation split out of ../shared/data/mpii-subset, by source frame.

A frame often holds several persons, so the split picks whole frames (the ``mpii_image`` of each image
record): 20 % of the frames, drawn with a fixed seed from their sorted names. It writes the image ids of
every crop of those frames, one per line, to configs/splits/mpii-subset-val.txt. Training configs
exclude that file (``exclude_image_ids``); evaluation keeps only it (``tpose eval --image-ids``).

    python scripts/make_mpii_val_split.py [--ann-file ...] [--out ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ann-file", type=Path,
                        default=ROOT.parent / "shared/data/mpii-subset/annotations/person_keypoints_mpii16.json")
    parser.add_argument("--out", type=Path, default=ROOT / "configs/splits/mpii-subset-val.txt")
    parser.add_argument("--share", type=float, default=0.2, help="share of the frames kept for validation")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    data = json.loads(args.ann_file.read_text())
    by_frame: dict[str, list[int]] = defaultdict(list)
    for image in data["images"]:
        by_frame[image["mpii_image"]].append(int(image["id"]))
    frames = sorted(by_frame)
    order = np.random.default_rng(args.seed).permutation(len(frames))
    chosen = sorted(frames[i] for i in order[: round(args.share * len(frames))])
    ids = sorted(i for f in chosen for i in by_frame[f])
    persons = sum(1 for a in data["annotations"] if a["image_id"] in set(ids))
    header = [
        "# MPII validation split of ../shared/data/mpii-subset (made by scripts/make_mpii_val_split.py):",
        f"# {len(chosen)} of {len(frames)} source frames (share {args.share}, seed {args.seed}), split by frame,",
        f"# {len(ids)} image ids, {persons} persons. Never train on these.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + [str(i) for i in ids]) + "\n")
    print(f"wrote {args.out}: {len(chosen)} frames, {len(ids)} images, {persons} persons")


if __name__ == "__main__":
    main()
