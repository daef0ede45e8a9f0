"""Review the person ids of a tracked video (docs/tracking.md): replay tracker settings, and sheets to look at.

    tpose predict clip.mp4 -o out/                        # out/clip_pose.json + out/clip_pose.mp4
    python scripts/review_tracks.py replay out/clip_pose.json
    python scripts/review_tracks.py sheets out/clip_pose.json out/clip_pose.mp4 -o out/sheets

``replay`` feeds the boxes, scores and keypoints that ``tpose predict`` wrote back through
:class:`tpose.inference.Tracker` under a grid of settings and prints, per setting, the number of tracks and
of *handovers*: a track that starts within 15 frames after another ended nearby (centre distance under
0.6 box heights), the usual sign of an id switch. It needs no model. ``sheets`` draws, for every track that
starts after the first frame and every jump of a track's box (its centre moving over half a box height
between consecutive frames), four crops of the drawn video around that moment, five events a sheet, so
that a person can tell a newcomer from a switch by looking.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import cv2
import numpy as np

from tpose.data.keypoint_sets import get_keypoint_set
from tpose.inference.tracking import Tracker


def _frames(record: dict) -> list[tuple[int, float, np.ndarray, np.ndarray, np.ndarray]]:
    names = get_keypoint_set(record["keypoint_set"]).names
    out = []
    for f in record["frames"]:
        persons = f["persons"]
        boxes = np.array([p["box"] for p in persons], np.float64).reshape(-1, 4)
        scores = np.array([p["score"] for p in persons], np.float64)
        kpts = np.array([[p["keypoints"][n] for n in names] for p in persons], np.float64).reshape(-1, len(names), 3)
        out.append((f["frame"], f["time"], boxes, scores, kpts))
    return out


def _tracks(record: dict) -> dict[int, list[tuple[int, np.ndarray]]]:
    tracks: dict[int, list[tuple[int, np.ndarray]]] = {}
    for f in record["frames"]:
        for p in f["persons"]:
            if p.get("track_id") is not None:
                tracks.setdefault(p["track_id"], []).append((f["frame"], np.array(p["box"], np.float64)))
    return tracks


def _centre(box: np.ndarray) -> np.ndarray:
    return box[:2] + box[2:] / 2


def handovers(tracks: dict[int, list[tuple[int, np.ndarray]]], window: int = 15, distance: float = 0.6) -> int:
    """Tracks that start within ``window`` frames after another ended less than ``distance`` box heights away."""
    count = 0
    for tid, seen in tracks.items():
        f0, b0 = seen[0]
        if f0 == 0:
            continue
        for other, seen_other in tracks.items():
            f1, b1 = seen_other[-1]
            if other != tid and f0 - window <= f1 < f0 and \
                    np.linalg.norm(_centre(b0) - _centre(b1)) / max(b0[3], b1[3]) < distance:
                count += 1
                break
    return count


def replay(record: dict, min_ious: list[float], max_lost: list[int], predict: list[int], oks_weight: float) -> None:
    frames = _frames(record)
    sigmas = get_keypoint_set(record["keypoint_set"]).sigmas
    print("| min_iou | max_lost_frames | predict_frames | tracks | handovers |\n|---|---|---|---|---|")
    for mi, ml, pf in itertools.product(min_ious, max_lost, predict):
        tracker = Tracker(min_iou=mi, max_lost_frames=ml, predict_frames=pf, oks_weight=oks_weight,
                          oks_sigmas=sigmas, keypoint_threshold=0.3)
        tracks: dict[int, list[tuple[int, np.ndarray]]] = {}
        for index, t, boxes, scores, kpts in frames:
            ids = tracker.update(boxes, scores, kpts if len(boxes) else None, frame_index=index, timestamp=t)
            for i, b in zip(ids, boxes, strict=True):
                tracks.setdefault(i, []).append((index, b))
        print(f"| {mi} | {ml} | {pf} | {len(tracks)} | {handovers(tracks)} |")


def sheets(record: dict, video: Path, out: Path, per_sheet: int = 5) -> None:
    tracks = _tracks(record)
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        raise SystemExit(f"{video}: no frame could be read")
    h, w = frames[0].shape[:2]
    events = [("start", tid, seen[0][0], seen[0][1]) for tid, seen in tracks.items() if seen[0][0] > 0]
    for tid, seen in tracks.items():
        for (fa, ba), (fb, bb) in itertools.pairwise(seen):
            if np.linalg.norm(_centre(ba) - _centre(bb)) > 0.5 * max(ba[3], bb[3]) * (fb - fa) ** 0.5:
                events.append(("jump", tid, fb, bb))
    events.sort(key=lambda e: e[2])
    tiles = []
    for kind, tid, f0, box in events:
        cx, cy = _centre(box)
        s = max(box[3] * 1.8, 120)
        x0, y0, x1, y1 = int(max(cx - s, 0)), int(max(cy - 0.7 * s, 0)), int(min(cx + s, w)), int(min(cy + 0.7 * s, h))
        row = []
        for fi in (max(f0 - 6, 0), max(f0 - 2, 0), f0, min(f0 + 4, len(frames) - 1)):
            crop = cv2.resize(frames[fi][y0:y1, x0:x1], (240, 170))
            cv2.putText(crop, f"f{fi}", (3, 165), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
            row.append(crop)
        strip = np.hstack(row)
        label = np.zeros((22, strip.shape[1], 3), np.uint8)
        cv2.putText(label, f"{kind}: track {tid} at f{f0} box {[int(v) for v in box]}", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1)
        tiles.append(np.vstack([label, strip]))
    out.mkdir(parents=True, exist_ok=True)
    for k in range(0, len(tiles), per_sheet):
        cv2.imwrite(str(out / f"sheet{k // per_sheet:02d}.png"), np.vstack(tiles[k : k + per_sheet]))
    print(f"{len(tracks)} tracks, {len(events)} events -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay")
    p.add_argument("json", type=Path)
    p.add_argument("--min-iou", type=float, nargs="+", default=[0.3, 0.2, 0.1, 0.05])
    p.add_argument("--max-lost-frames", type=int, nargs="+", default=[10, 20, 30])
    p.add_argument("--predict-frames", type=int, nargs="+", default=[0, 5])
    p.add_argument("--oks-weight", type=float, default=0.5)
    p = sub.add_parser("sheets")
    p.add_argument("json", type=Path)
    p.add_argument("video", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    record = json.loads(args.json.read_text())
    if args.command == "replay":
        replay(record, args.min_iou, args.max_lost_frames, args.predict_frames, args.oks_weight)
    else:
        sheets(record, args.video, args.out)


if __name__ == "__main__":
    main()
