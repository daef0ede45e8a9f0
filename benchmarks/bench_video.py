"""End-to-end speed of finding people and their poses, frame by frame, with each stage's share.

Per frame of a video (default: the first 300 frames of ``../shared/data/video/vtest.avi``): read, detect
(YOLOX), crop, pose network, decode, OKS-NMS, track + smooth, draw, write the drawn frame. Configurations
change one thing at a time against ``tpose predict``'s video defaults (no flip test, the PyTorch pose path
under bf16 autocast where the CPU has native bf16, detection every frame, detector at 416): the flip test,
fp32, detection every 2 / 4 frames, the detector at 320 / 640, the pose model as fp32 or int8 ONNX. Each
reports the median milliseconds per frame, frames per second, the mean of every stage, and what one more
person costs (the slope of the pose stages over the persons of a frame). The same
default path is then timed beside one busy process (a core kept busy by a spinning child), and on photos
(detect + pose + draw of each image of a folder).

    python benchmarks/bench_video.py [--frames 300] [--int8-pose FILE] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from common import busy_core, machine_info
from report import write_report

from tpose.data.image_io import read_image
from tpose.inference.detector import YoloxDetector
from tpose.inference.draw import draw_poses
from tpose.inference.predictor import PersonPose, PosePredictor
from tpose.inference.sources import list_images, open_source
from tpose.inference.video import PoseTracker, TrackingOptions, agreement
from tpose.utils.cores import native_bf16, usable_cores

STAGES = ("read", "detect", "crop", "network", "decode", "nms", "track", "draw", "write")
ANCHOR_MS = 116.0  # YOLO11n-pose, detect + pose in one network, 640 px, 2 threads, this CPU (issue text)


@dataclass(frozen=True)
class VideoConfig:
    """One way to run the pipeline; the defaults are tpose's."""

    name: str
    flip_test: bool = False  # tpose predict's video default
    detect_every: int = 1
    detector_size: int = 416
    pose: str = "torch"  # torch | onnx (fp32) | int8
    precision: str = "auto"  # torch path: auto (video: bf16 where native) | fp32 | bf16
    busy: bool = False  # time it beside one process that keeps a core busy
    notes: dict[str, Any] = field(default_factory=dict)


def default_configs(int8_pose: Path | None, fp32_pose: Path | None) -> list[VideoConfig]:
    configs = [
        VideoConfig("default"),
        VideoConfig("with the flip test", flip_test=True),
        VideoConfig("pose fp32 (PyTorch)", precision="fp32"),
        VideoConfig("pose fp32 with the flip test (the photo path)", precision="fp32", flip_test=True),
        VideoConfig("detect every 2 frames", detect_every=2),
        VideoConfig("detect every 4 frames", detect_every=4),
        VideoConfig("detector at 320", detector_size=320),
        VideoConfig("detector at 640", detector_size=640),
    ]
    if fp32_pose is not None:
        configs.append(VideoConfig("pose fp32 ONNX", pose="onnx"))
    if int8_pose is not None:
        configs.append(VideoConfig("pose int8 ONNX", pose="int8"))
        configs.append(VideoConfig("pose int8 ONNX, detect every 2", pose="int8", detect_every=2))
    configs.append(VideoConfig("default, one other process busy", busy=True))
    return configs


def _predictor(cfg: VideoConfig, weights: str, detector: Path, pose_files: dict[str, Path | None]) -> PosePredictor:
    det = YoloxDetector(detector, cfg.detector_size)
    pose = weights if cfg.pose == "torch" else str(pose_files[cfg.pose])
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if native_bf16() else "fp32"
    return PosePredictor(weights=pose, detector=det, flip_test=cfg.flip_test,
                         precision=precision if cfg.pose == "torch" else "fp32")


def time_video(cfg: VideoConfig, video: Path, frames: int, weights: str, detector: Path,
               pose_files: dict[str, Path | None], out_dir: Path,
               keep: list[list[PersonPose]] | None = None) -> dict[str, Any]:
    """Every stage of every frame of ``video`` (up to ``frames``), timed; medians per frame. The persons of
    each frame are appended to ``keep`` when given (to compare configurations)."""
    predictor = _predictor(cfg, weights, detector, pose_files)
    tracker = PoseTracker(predictor, TrackingOptions(detect_every=cfg.detect_every))
    source = open_source(video, max_frames=frames)
    writer = cv2.VideoWriter(str(out_dir / f"{cfg.name.replace(' ', '_')}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                             float(source.fps), (source.frame_size[1], source.frame_size[0]))
    per_frame: list[dict[str, float]] = []
    persons: list[int] = []
    iterator = iter(source)
    while True:
        t0 = time.perf_counter()
        frame = next(iterator, None)
        t_read = time.perf_counter() - t0
        if frame is None:
            break
        before = Counter(predictor.timings)
        found = tracker(frame.image, frame.index, frame.index / source.fps)
        spent = {k: predictor.timings[k] - before[k] for k in ("detect", "crop", "network", "decode", "nms", "track")}
        t1 = time.perf_counter()
        drawn = draw_poses(frame.image, found, predictor.keypoint_set)
        t2 = time.perf_counter()
        writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        t3 = time.perf_counter()
        per_frame.append({"read": t_read, **spent, "draw": t2 - t1, "write": t3 - t2, "total": t3 - t0})
        persons.append(len(found))
        if keep is not None:
            keep.append(found)
    writer.release()
    warm = per_frame[3:] if len(per_frame) > 10 else per_frame  # the first frames warm the caches up
    warm_persons = persons[len(per_frame) - len(warm):]
    total = [f["total"] for f in warm]
    pose = [f["crop"] + f["network"] + f["decode"] for f in warm]
    slope = float(np.polyfit(warm_persons, pose, 1)[0]) if len(set(warm_persons)) > 1 else None
    median_total = statistics.median(total)
    return {
        "config": cfg.name, "flip_test": cfg.flip_test, "detect_every": cfg.detect_every,
        "detector_size": cfg.detector_size, "pose": cfg.pose, "precision": cfg.precision, "busy": cfg.busy,
        "frames": len(per_frame),
        "median_ms": 1000 * median_total, "fps": 1.0 / median_total,
        "stage_mean_ms": {s: 1000 * statistics.mean(f[s] for f in warm) for s in STAGES},
        "stage_share": {s: sum(f[s] for f in warm) / sum(total) for s in STAGES},
        "persons_per_frame": statistics.mean(warm_persons),
        "ms_per_extra_person": None if slope is None else 1000 * slope,
        "detector_runs": tracker.detections_run, "torch_threads": torch.get_num_threads(),
    }


def time_photos(folder: Path, weights: str, detector: Path, limit: int = 40) -> dict[str, Any]:
    """Read + detect + pose + draw per photo of ``folder`` (tpose's defaults)."""
    predictor = PosePredictor(weights=weights, detector=YoloxDetector(detector))
    times, counts = [], []
    for path in list_images(folder)[:limit]:
        t0 = time.perf_counter()
        image = read_image(path)
        found = predictor.predict_rgb([image])[0]
        draw_poses(image, found, predictor.keypoint_set)
        times.append(time.perf_counter() - t0)
        counts.append(len(found))
    times, counts = times[2:], counts[2:]
    return {"images": len(times), "median_ms": 1000 * statistics.median(times),
            "persons_per_image": statistics.mean(counts), "max_persons": max(counts)}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rows = results["video"]
    default = next(r for r in rows if r["config"] == "default")
    lines = [
        "# Finding people and their poses: end-to-end speed per frame", "",
        f"Measured {m['time_utc']} UTC on {m['cpu']} ({m['usable_cores']} usable cores, torch threads "
        f"{default['torch_threads']}), torch {m['torch']}; video {results['video_file']} (first "
        f"{default['frames']} frames, {default['persons_per_frame']:.1f} persons per frame on average); pose "
        f"weights {results['weights']}; detector {results['detector']}. ms / frame is the median over the "
        "frames (the first 3 excluded as warm-up); the stage columns are means per frame (with detection every N "
        "frames, most frames run no detector); ms / extra person is the slope of crop + network + decode over the "
        "persons of a frame.", "",
        f"Command: `{results['command']}`", "",
        "| configuration | ms / frame | fps | vs default | persons / frame | " + " | ".join(STAGES)
        + " | ms / extra person |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|",
    ]
    for r in rows:
        stages = " | ".join(f"{r['stage_mean_ms'][s]:.1f}" for s in STAGES)
        extra = "n/a" if r["ms_per_extra_person"] is None else f"{r['ms_per_extra_person']:.1f}"
        ratio = r["median_ms"] / default["median_ms"]
        lines.append(f"| {r['config']} | {r['median_ms']:.1f} | {r['fps']:.1f} | {ratio:.2f}x | "
                     f"{r['persons_per_frame']:.1f} | {stages} | {extra} |")
    shares = ", ".join(f"{s} {100 * default['stage_share'][s]:.0f}%" for s in STAGES)
    lines += ["", f"Share of the default path's time: {shares}.", ""]
    for r in rows:
        a = r.get("agreement")
        if a and a["median_box_iou"] is not None and a["median_keypoint_distance_px"] is not None:
            lines.append(f"{r['config']} against {a['reference']} (every frame), persons matched by the box of "
                         f"their confident keypoints at IoU >= 0.3: {100 * a['unmatched_share']:.1f} % of "
                         f"{a['persons']} persons unmatched, median box IoU {a['median_box_iou']:.2f}, median "
                         f"keypoint distance {a['median_keypoint_distance_px']:.1f} px.")
    if any(r.get("agreement") for r in rows):
        lines.append("")
    busy = next((r for r in rows if r["busy"]), None)
    if busy is not None:
        ratio = busy["median_ms"] / default["median_ms"]
        lines.append(f"Beside one busy process: {busy['median_ms']:.1f} ms per frame, {ratio:.2f}x the idle default "
                     f"(goal: at most 2x): {'met' if ratio <= 2 else 'MISSED'}.")
    goal = default["median_ms"] <= ANCHOR_MS
    lines.append(f"Goal: the default path at most {ANCHOR_MS:.0f} ms per frame (YOLO11n-pose with two threads on this "
                 f"CPU): {default['median_ms']:.1f} ms ({'met' if goal else 'MISSED'}).")
    if results.get("photos"):
        p = results["photos"]
        lines.append(f"Photos ({results['photos_folder']}, {p['images']} images, {p['persons_per_image']:.1f} persons "
                     f"on average, up to {p['max_persons']}): {p['median_ms']:.1f} ms per photo (read, detect, pose, "
                     "draw).")
    if results.get("note"):
        lines += ["", f"Note: {results['note']}"]
    return "\n".join(lines) + "\n"


def run_benchmark(video: Path, frames: int, weights: str, detector: Path, configs: Sequence[VideoConfig],
                  pose_files: dict[str, Path | None], photos: Path | None, out: Path | None, command: str,
                  note: str = "") -> dict[str, Any]:
    rows = []
    kept: dict[str, list[list[PersonPose]]] = {}
    with tempfile.TemporaryDirectory(prefix="tpose-bench-video-") as tmp:
        for cfg in configs:
            print(f"timing {cfg.name} ...", flush=True)
            kept[cfg.name] = []
            if cfg.busy:
                with busy_core():
                    row = time_video(replace(cfg), video, frames, weights, detector, pose_files, Path(tmp))
            else:
                row = time_video(cfg, video, frames, weights, detector, pose_files, Path(tmp), kept[cfg.name])
            print(f"  {row['median_ms']:.1f} ms/frame, {row['fps']:.1f} fps", flush=True)
            rows.append(row)
    # detection every N frames against every frame, all else equal: how much of the result it keeps
    for cfg, row in zip(configs, rows, strict=True):
        twin = next((c for c in configs if c.detect_every == 1 and not c.busy
                     and replace(c, name=cfg.name, detect_every=cfg.detect_every) == cfg), None)
        if cfg.detect_every > 1 and twin is not None and kept.get(twin.name):
            row["agreement"] = {"reference": twin.name, **agreement(kept[twin.name], kept[cfg.name])}
    results = {"machine": machine_info(usable_cores()), "video_file": str(video), "weights": weights,
               "detector": str(detector), "video": rows, "command": command, "note": note}
    if photos is not None and photos.is_dir():
        results["photos"] = time_photos(photos, weights, detector)
        results["photos_folder"] = str(photos)
    text = markdown(results)
    print(text)
    if out is not None:
        write_report(out, "video", "Finding people and their poses: end-to-end speed per frame", results,
                     [text.split("\n", 2)[2]])
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="end-to-end speed of detection + pose + tracking per video frame")
    p.add_argument("--video", type=Path, default=Path("../shared/data/video/vtest.avi"))
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--weights", default="src/tpose/weights/transpose_r_a4_lsp_mpii_128x96.safetensors")
    p.add_argument("--detector", type=Path, default=Path("../shared/data/models/yolox_nano.onnx"))
    p.add_argument("--fp32-pose", type=Path, help="the pose model exported to fp32 ONNX (tpose export)")
    p.add_argument("--int8-pose", type=Path, help="the pose model quantized to int8 (tpose export --int8)")
    p.add_argument("--photos", type=Path, default=Path("../shared/data/coco-mini/train2017"))
    p.add_argument("--only", nargs="*", help="run only these configuration names")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--note", default="")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configs = default_configs(args.int8_pose, args.fp32_pose)
    if args.only:
        configs = [c for c in configs if c.name in args.only]
    command = "python benchmarks/bench_video.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    run_benchmark(args.video, args.frames, args.weights, args.detector, configs,
                  {"onnx": args.fp32_pose, "int8": args.int8_pose}, args.photos, args.out, command, args.note)
    return 0

