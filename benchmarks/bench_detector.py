"""Person detector benchmark: how many people YOLOX finds (recall, precision) and how fast, on this machine.

Accuracy (score threshold 0.3, NMS 0.45; a detection hits a target at IoU >= 0.5, detections taken in score
order, each to its best-overlapping unmatched target):

- ``coco-mini``: targets are the person annotations with area > 32 x 32, at least 5 labelled keypoints and
  not crowd (the people a pose model is evaluated on). A detection matching no target but overlapping
  (IoU >= 0.5) another annotated person (smaller, fewer keypoints, or a crowd region) is neither a hit nor a
  false positive. These 80 images are COCO **train2017** images, which YOLOX was trained on: the figures are
  optimistic. ``precision_crowd_ioa`` also ignores detections lying mostly (intersection over the
  detection's area >= 0.5) inside a crowd region, as COCO's own evaluation does.
- ``lspet`` validation (im09001-im10000): one annotated person per image, no person box given; the target
  is the box of the visible joints enlarged 1.2x about its centre (a person's extent beyond the joints:
  head, feet, hands), and also the tight box. Other people in the images are not annotated, so their
  detections count as false positives: the precision there is a lower bound.

Speed: median milliseconds per image of the whole call (letterbox, ONNX Runtime, decoding; stages timed
too) on real COCO photos decoded beforehand, after warm-up calls; with ONNX Runtime's thread spinning off
and on, on an otherwise idle machine and with one other process keeping one core busy (``while True:
pass``). One session is alive at a time: a spinning pool keeps burning its cores for a while after each
call, which would slow whichever session ran next. Each block also records how many cores the other
processes of the machine kept busy meanwhile; every configuration is timed in several blocks and the least
disturbed one is reported, as the machine is shared with other jobs.

Run from the repository root: ``python benchmarks/bench_detector.py`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import busy_core, fmt, machine_info, markdown_table, write_json, write_markdown

from tpose.data.image_io import read_image
from tpose.data.lspet import load_lspet_records
from tpose.inference.detector import PersonBoxes, PersonDetector, YoloxDetector
from tpose.utils.boxes import box_iou, enlarge_box
from tpose.utils.cores import usable_cores
from tpose.utils.machine import cpu_features

DEFAULT_DATA = Path("..") / "shared" / "data"  # relative to the repository root
DEFAULT_OUT = Path("benchmarks") / "results"
SIZES = (320, 416, 640)
SCORE_THRESHOLD = 0.3
NMS_THRESHOLD = 0.45
IOU_THRESHOLD = 0.5
LSPET_VAL = (9001, 10000)
LSPET_ENLARGE = 1.2
# figures measured earlier with the same file and protocol, to compare with
REFERENCE = {
    "coco-mini": {"recall": 0.71, "precision": 0.71},
    "lspet": {"recall": 0.81, "recall_tight": 0.74},
    "ms_per_image_416_idle": 48.0,
}


@dataclass
class ImageTargets:
    """One image: the people a detector must find and other annotated people it may find without penalty.

    ``targets`` and ``ignore`` are (x, y, w, h) boxes; ``ignore_crowd`` marks the ignore boxes that are crowd
    regions (boxes around many people).
    """

    path: Path
    targets: np.ndarray
    ignore: np.ndarray
    ignore_crowd: np.ndarray


def coco_targets(
    ann_file: str | Path, image_dir: str | Path, min_area: float = 32 * 32, min_keypoints: int = 5
) -> list[ImageTargets]:
    """Every image of a COCO keypoint file, with its pose-evaluable people as targets and the rest ignored."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO(str(ann_file))
    person_ids = coco.getCatIds(catNms=["person"]) or [1]
    images = []
    for img in coco.loadImgs(sorted(coco.getImgIds())):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"], catIds=person_ids, iscrowd=None))
        is_target = [a["area"] > min_area and a.get("num_keypoints", 0) >= min_keypoints and not a["iscrowd"]
                     for a in anns]
        targets = [a["bbox"] for a, t in zip(anns, is_target, strict=True) if t]
        others = [a for a, t in zip(anns, is_target, strict=True) if not t]
        images.append(ImageTargets(
            path=Path(image_dir) / img["file_name"],
            targets=np.asarray(targets, np.float64).reshape(-1, 4),
            ignore=np.asarray([a["bbox"] for a in others], np.float64).reshape(-1, 4),
            ignore_crowd=np.asarray([bool(a["iscrowd"]) for a in others], bool),
        ))
    return images


def lspet_targets(
    root: str | Path, first: int = LSPET_VAL[0], last: int = LSPET_VAL[1], enlarge: float = LSPET_ENLARGE
) -> list[ImageTargets]:
    """LSPET images ``first``..``last``, each with one target: its visible-joint box enlarged ``enlarge`` times."""
    empty = np.zeros((0, 4))
    return [ImageTargets(Path(r.image_path), enlarge_box(r.box, enlarge).reshape(1, 4), empty, np.zeros(0, bool))
            for r in load_lspet_records(root, first, last)]


def _ioa(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Intersection over the area of each box [N], with each region [M]: how much of the box lies inside."""
    lt = np.maximum(boxes[:, None, :2], regions[None, :, :2])
    rb = np.minimum(boxes[:, None, :2] + boxes[:, None, 2:], regions[None, :, :2] + regions[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    return inter / np.maximum(boxes[:, 2:].prod(-1)[:, None], 1e-12)


def match_greedy(
    found: PersonBoxes, image: ImageTargets, iou_threshold: float = IOU_THRESHOLD, crowd_ioa: bool = False
) -> tuple[int, int]:
    """(hits, false positives) of one image's detections, taken best score first.

    A detection hits the unmatched target it overlaps most if that IoU is >= ``iou_threshold``; otherwise
    it is ignored if it overlaps an ignore box that much (with ``crowd_ioa``, crowd regions by intersection
    over the detection's area instead of IoU), and else it is a false positive.
    """
    boxes = found.boxes.astype(np.float64)  # PersonBoxes are sorted by score already
    if len(boxes) == 0:
        return 0, 0
    iou_t = box_iou(boxes, image.targets)
    iou_i = box_iou(boxes, image.ignore)
    if crowd_ioa and image.ignore_crowd.any():
        iou_i = np.where(image.ignore_crowd[None, :], _ioa(boxes, image.ignore), iou_i)
    taken = np.zeros(len(image.targets), bool)
    hits = false_pos = 0
    for d in range(len(boxes)):
        if len(image.targets):
            overlap = np.where(taken, -1.0, iou_t[d])
            best = int(np.argmax(overlap))
            if overlap[best] >= iou_threshold:
                taken[best] = True
                hits += 1
                continue
        if len(image.ignore) and np.any(iou_i[d] >= iou_threshold):
            continue
        false_pos += 1
    return hits, false_pos


def score_detections(
    images: Sequence[ImageTargets], found: Sequence[PersonBoxes], iou_threshold: float = IOU_THRESHOLD,
    crowd_ioa: bool = False,
) -> dict[str, Any]:
    """Recall and precision over a set of images (``found[i]`` are the detections of ``images[i]``)."""
    hits = false_pos = 0
    for image, boxes in zip(images, found, strict=True):
        h, f = match_greedy(boxes, image, iou_threshold, crowd_ioa)
        hits += h
        false_pos += f
    targets = sum(len(i.targets) for i in images)
    detections = sum(len(b) for b in found)
    return {
        "images": len(images), "targets": targets, "detections": detections, "hits": hits,
        "false_positives": false_pos, "ignored": detections - hits - false_pos,
        "recall": hits / targets if targets else None,
        "precision": hits / (hits + false_pos) if hits + false_pos else None,
    }


def detect_images(detectors: Mapping[str, PersonDetector], paths: Sequence[Path]) -> dict[str, list[PersonBoxes]]:
    """Each detector's boxes for each image; every image is decoded once for all detectors."""
    out: dict[str, list[PersonBoxes]] = {name: [] for name in detectors}
    for path in paths:
        rgb = read_image(path)
        for name, det in detectors.items():
            out[name].append(det(rgb))
    return out


def _timed_call(det: YoloxDetector, image: np.ndarray) -> dict[str, float]:
    """Seconds of one whole detection and of its stages."""
    t0 = time.perf_counter()
    blob, ratio = det.preprocess(image)
    t1 = time.perf_counter()
    raw = det.run(blob)
    t2 = time.perf_counter()
    det.postprocess(raw, ratio, image.shape[:2])
    t3 = time.perf_counter()
    return {"total": t3 - t0, "preprocess": t1 - t0, "onnxruntime": t2 - t1, "decode": t3 - t2}


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot, summed over cores (Linux /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc; 0 if it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def time_detector(
    detector: YoloxDetector, images: Sequence[np.ndarray], warmup: int = 3, rounds: int = 1,
    load_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """Median / p90 milliseconds per image (whole call and stages) over ``rounds`` x ``images``, after ``warmup``.

    Also, per second of wall time: ``own_cores`` (this process), ``load_cores`` (the processes ``load_pids``, a
    load put there on purpose) and ``other_cores`` (everything else on the machine, hypervisor steal included),
    which tells a clean measurement from one disturbed by other jobs.
    """
    for _ in range(warmup):
        _timed_call(detector, images[0])
    busy0, own0, wall0 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    load0 = sum(_process_cpu_seconds(p) for p in load_pids)
    rows = [_timed_call(detector, image) for _ in range(rounds) for image in images]
    busy1, own1, wall1 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    load1 = sum(_process_cpu_seconds(p) for p in load_pids)
    wall = wall1 - wall0
    total = sorted(r["total"] for r in rows)
    others = None
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0 - (own1 - own0) - (load1 - load0)) / wall)
    return {
        "n": len(rows),
        "ms_median": 1000 * statistics.median(total),
        "ms_p90": 1000 * total[min(len(total) - 1, int(0.9 * len(total)))],
        "ms_min": 1000 * total[0],
        **{f"ms_{stage}": 1000 * statistics.median(r[stage] for r in rows)
           for stage in ("preprocess", "onnxruntime", "decode")},
        "own_cores": (own1 - own0) / wall,
        "load_cores": (load1 - load0) / wall,
        "other_cores": others,
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()



@dataclass(frozen=True)
class DetectorBench:
    """What the detector benchmark measures (accuracy on which data, speed at which sizes and threads)
    and where it writes."""

    data: str | Path = DEFAULT_DATA
    model: str | Path | None = None
    sizes: Sequence[int] = SIZES
    threads: int | Sequence[int] | None = None
    speed_images: int = 20
    blocks: int = 4
    quiet_wait: float = 60.0
    accuracy: bool = True
    speed: bool = True
    accuracy_from: str | Path | None = None
    out: str | Path | None = DEFAULT_OUT
    note: str = ""
    command: str = ""


def run_benchmark(options: DetectorBench, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Accuracy on coco-mini and LSPET validation and speed per input size; writes detector.json / .md to ``out``.

    ``threads``: intra-op thread counts to time (default: the usable cores); accuracy uses the first.
    ``accuracy_from``: take the accuracy part from an earlier detector.json of the same model file instead
    (accuracy does not need a quiet machine, timing does: the two can run at different times).
    """
    (data, model, sizes, threads, speed_images, blocks, quiet_wait, accuracy, speed, accuracy_from, out, note,
     command) = (
        options.data, options.model, options.sizes, options.threads, options.speed_images, options.blocks,
        options.quiet_wait, options.accuracy, options.speed, options.accuracy_from, options.out, options.note,
        options.command)
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    data = Path(data)
    model_path = Path(model) if model is not None else data / "models" / "yolox_nano.onnx"
    thread_list = [usable_cores()] if threads is None else (
        [int(threads)] if isinstance(threads, int) else [int(t) for t in threads])
    sizes = [int(s) for s in sizes]
    results: dict[str, Any] = {
        "benchmark": "detector",
        "model": str(model_path),
        "model_bytes": model_path.stat().st_size if model_path.is_file() else None,
        "model_sha256": _sha256(model_path) if model_path.is_file() else None,
        "score_threshold": SCORE_THRESHOLD, "nms_threshold": NMS_THRESHOLD, "iou_threshold": IOU_THRESHOLD,
        "sizes": sizes, "threads": thread_list, "reference": REFERENCE,
        "machine": {**machine_info(thread_list[0]), "cpu_flags": cpu_features()},
        "command": command, "note": note,
    }
    if accuracy_from is not None:
        earlier = json.loads(Path(accuracy_from).read_text())
        if earlier.get("model_sha256") != results["model_sha256"] or "accuracy" not in earlier:
            raise ValueError(f"{accuracy_from}: no accuracy results for the model {model_path} (SHA-256 differs)")
        results["accuracy"] = earlier["accuracy"]
        results["accuracy_run"] = {"command": earlier.get("command"), "time_utc": earlier["machine"]["time_utc"],
                                   "file": str(accuracy_from)}
    elif accuracy:
        results["accuracy"] = _accuracy(data, model_path, sizes, thread_list[0], say)
    if speed:
        results["speed"] = _speed(data, model_path, sizes, thread_list, speed_images, blocks, quiet_wait, say)
    results["machine"]["load_average_after"] = machine_info(thread_list[0]).get("load_average")
    results["seconds"] = round(time.perf_counter() - started, 1)
    tables = _markdown(results)
    say("\n\n".join(tables[1:]))
    if out is not None:
        folder = Path(out)
        results["files"] = [str(folder / "detector.json"), str(folder / "detector.md")]
        write_json(folder / "detector.json", results)
        write_markdown(folder / "detector.md", "Person detector benchmark (YOLOX)", tables)
    return results


def _detectors(model: Path, sizes: Sequence[int], threads: int, spinning: bool = False) -> dict[str, YoloxDetector]:
    return {str(s): YoloxDetector(model, input_size=s, score_threshold=SCORE_THRESHOLD, nms_threshold=NMS_THRESHOLD,
                                  threads=threads, spinning=spinning) for s in sizes}


def _accuracy(data: Path, model: Path, sizes: Sequence[int], threads: int,
              say: Callable[[str], None]) -> dict[str, Any]:
    detectors = _detectors(model, sizes, threads)
    acc: dict[str, Any] = {}
    ann = data / "coco-mini" / "annotations" / "person_keypoints_train2017.json"
    if ann.is_file():
        images = coco_targets(ann, data / "coco-mini" / "train2017")
        say(f"coco-mini: {len(images)} images, {sum(len(i.targets) for i in images)} targets; detecting...")
        found = detect_images(detectors, [i.path for i in images])
        acc["coco-mini"] = {size: {**score_detections(images, found[size]),
                                   "precision_crowd_ioa": score_detections(images, found[size],
                                                                           crowd_ioa=True)["precision"]}
                            for size in found}
    else:
        say(f"coco-mini not found at {ann}: skipped")
    root = data / "lspet"
    if (root / "joints.mat").is_file():
        images = lspet_targets(root, *LSPET_VAL, enlarge=LSPET_ENLARGE)
        tight = lspet_targets(root, *LSPET_VAL, enlarge=1.0)
        say(f"lspet validation: {len(images)} images; detecting...")
        found = detect_images(detectors, [i.path for i in images])
        acc["lspet"] = {size: {**score_detections(images, found[size]),
                               "recall_tight": score_detections(tight, found[size])["recall"]}
                        for size in found}
    else:
        say(f"LSPET not found at {root}: skipped")
    return acc


def wait_for_quiet(max_seconds: float, threshold: float = 0.2, window: float = 1.0) -> tuple[float, float | None]:
    """Wait (at most ``max_seconds``) until other processes use under ``threshold`` cores over ``window`` seconds.

    Returns the seconds waited and the last reading (None where /proc/stat cannot be read).
    """
    start = time.perf_counter()
    while True:
        b0, own0, w0 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
        time.sleep(window)
        b1, own1, w1 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
        if b0 is None or b1 is None:
            return time.perf_counter() - start, None
        reading = max(0.0, (b1 - b0 - (own1 - own0)) / (w1 - w0))
        if reading < threshold or time.perf_counter() - start >= max_seconds:
            return time.perf_counter() - start, reading


def pick_block(runs: Sequence[dict[str, Any]], tolerance: float = 0.1) -> dict[str, Any]:
    """The block to report: of those the other processes disturbed least (other load within ``tolerance`` cores of
    the lowest), the one with the median time (the lower middle one of an even count)."""
    others = [r["other_cores"] if r.get("other_cores") is not None else 0.0 for r in runs]
    clean = sorted((r for r, o in zip(runs, others, strict=True) if o <= min(others) + tolerance),
                   key=lambda r: r["ms_median"])
    return clean[(len(clean) - 1) // 2]


def _speed(data: Path, model: Path, sizes: Sequence[int], thread_list: Sequence[int], n_images: int, blocks: int,
           quiet_wait: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Every (load, threads, spinning, size) timed in ``blocks`` rounds, the configurations rotating between rounds;
    per configuration the round other processes disturbed least is kept (``pick_block``: the machine is shared).
    Before each round of each load, up to ``quiet_wait`` / (2 x blocks) seconds go to waiting for quiet."""
    folder = data / "coco-mini" / "train2017"
    paths = sorted(folder.glob("*.jpg"))[:n_images]
    if not paths:
        say(f"no images for timing in {folder}: speed skipped")
        return {}
    images = [read_image(p) for p in paths]
    shapes = sorted({im.shape[:2] for im in images})
    configs = [(threads, spinning, size) for threads in thread_list for spinning in (False, True) for size in sizes]
    loads = ("idle", "one core busy")
    timed: dict[tuple[str, int, bool, int], list[dict[str, Any]]] = {(ld, *c): [] for ld in loads for c in configs}
    waited = 0.0
    for k in range(blocks):
        shift = (k * len(configs)) // blocks
        for load in loads:
            w, reading = wait_for_quiet(quiet_wait / (2 * blocks))
            waited += w
            say(f"round {k + 1}/{blocks}, {load}: waited {w:.1f} s for quiet (other processes "
                f"{'?' if reading is None else f'{reading:.2f}'} cores)")
            with busy_core() if load != "idle" else contextlib.nullcontext() as pid:
                for threads, spinning, size in configs[shift:] + configs[:shift]:
                    # one session alive at a time: a spinning pool would slow whichever session ran next
                    det = YoloxDetector(model, input_size=size, score_threshold=SCORE_THRESHOLD,
                                        nms_threshold=NMS_THRESHOLD, threads=threads, spinning=spinning)
                    t = time_detector(det, images, load_pids=() if pid is None else (pid,))
                    del det
                    timed[(load, threads, spinning, size)].append(t)
                    say(f"  {size} {load}, {threads} threads, spinning {'on' if spinning else 'off'}: "
                        f"{t['ms_median']:.1f} ms median, other processes {t['other_cores'] or 0:.2f} cores")
    rows = []
    for (load, threads, spinning, size), runs in timed.items():
        best = pick_block(runs)
        rows.append({"input_size": size, "load": load, "threads": threads, "spinning": spinning, **best,
                     "blocks_ms_median": [r["ms_median"] for r in runs],
                     "blocks_other_cores": [r["other_cores"] for r in runs]})
    return {"images": len(images), "image_folder": str(folder), "image_shapes": [list(s) for s in shapes[:5]],
            "blocks": blocks, "seconds_waiting_for_quiet": round(waited, 1), "rows": rows}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _markdown(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m.get("cpu_flags", {}).items())
    head = [
        f"Measured {m['time_utc']} UTC on {m['cpu']} ({m['usable_cores']} usable cores; {flags}), onnxruntime "
        f"{m['onnxruntime']}, numpy {m['numpy']}, Python {m['python']}. Load average before "
        f"{m.get('load_average')}, after {m.get('load_average_after')}; {results['seconds']} s in all.",
        f"Model `{results['model']}` ({fmt(results['model_bytes'], 0)} bytes, SHA-256 "
        f"`{results['model_sha256']}`), person class only, score >= {results['score_threshold']}, NMS "
        f"{results['nms_threshold']}, a hit at IoU >= {results['iou_threshold']} (greedy by score); accuracy "
        f"with {results['threads'][0]} intra-op threads, spinning off.",
    ]
    if results.get("command"):
        head.append(f"Command: `{results['command']}`")
    if results.get("accuracy_run"):
        run = results["accuracy_run"]
        head.append(f"Accuracy from an earlier run ({run['time_utc']} UTC): `{run['command']}`")
    if results.get("note"):
        head.append(f"**Note:** {results['note']}")
    sections = ["\n\n".join(head)]
    acc = results.get("accuracy", {})
    ref = results["reference"]
    if acc:
        rows = []
        coco_ref = f"R {ref['coco-mini']['recall']} / P {ref['coco-mini']['precision']}"
        for size, r in acc.get("coco-mini", {}).items():
            rows.append(["coco-mini (COCO train2017)", size, r["images"], r["targets"], r["hits"],
                         r["false_positives"], r["ignored"], _pct(r["recall"]), _pct(r["precision"]),
                         _pct(r["precision_crowd_ioa"]),
                         coco_ref if size == "416" else ""])
        for size, r in acc.get("lspet", {}).items():
            rows.append(["LSPET val, joint box x1.2", size, r["images"], r["targets"], r["hits"], r["false_positives"],
                         r["ignored"], _pct(r["recall"]), _pct(r["precision"]), "",
                         f"R {ref['lspet']['recall']}" if size == "416" else ""])
        for size, r in acc.get("lspet", {}).items():
            rows.append(["LSPET val, tight joint box", size, r["images"], r["targets"], "", "", "",
                         _pct(r["recall_tight"]), "", "", f"R {ref['lspet']['recall_tight']}" if size == "416" else ""])
        sections.append("## Accuracy\n\n" + markdown_table(
            ["set", "input", "images", "targets", "hits", "false pos.", "ignored", "recall", "precision",
             "precision (crowd by IoA)", "reference"], rows))
        sections.append(
            "coco-mini: targets = person annotations with area > 32², >= 5 labelled keypoints, not crowd; a detection "
            "on another annotated person (IoU >= 0.5; crowd regions included) is ignored. **These are COCO train2017 "
            "images, which YOLOX was trained on: the figures are optimistic.** The last precision column also "
            "ignores detections lying mostly inside a crowd region (intersection over the detection's area >= 0.5, "
            "COCO's rule for crowds). LSPET: one annotated person per image (im09001-im10000); people left "
            "unannotated count as false positives, so its precision is a lower bound.")
    sp = results.get("speed", {})
    if sp.get("rows"):
        rows = [[r["input_size"], r["load"], r["threads"], "on" if r["spinning"] else "off", fmt(r["ms_median"]),
                 fmt(r["ms_p90"]), fmt(r["ms_preprocess"], 2), fmt(r["ms_onnxruntime"]), fmt(r["ms_decode"], 2),
                 fmt(1000 / r["ms_median"]), r["n"], fmt(r.get("load_cores"), 2), fmt(r.get("other_cores"), 2),
                 " / ".join(fmt(v) for v in r.get("blocks_ms_median", []))] for r in sp["rows"]]
        headers = ["input", "load", "threads", "spinning", "ms/img (median)", "p90", "letterbox", "onnxruntime",
                   "decode", "img/s", "n", "busy loop (cores)", "other load (cores)", "all blocks (ms)"]
        sections.append("## Speed\n\n" + markdown_table(headers, rows))
        examples = ", ".join(f"{w}x{h}" for h, w in sp["image_shapes"][:3])
        sections.append(
            f"{sp['images']} COCO photos (w x h e.g. {examples}), decoded beforehand; whole call (letterbox + ONNX "
            f"Runtime + decoding), 3 warm-up calls, one session alive at a time. Each configuration was timed in "
            f"{sp['blocks']} blocks (configurations rotating between rounds; before each round a wait for the "
            f"other processes to go quiet: {sp.get('seconds_waiting_for_quiet', 0)} s in all); the table shows, of "
            f"the blocks least disturbed by other processes (other load within 0.1 core of the lowest; the machine "
            f"is shared), the one with the median time; the last column gives every block's median. 'one core "
            f"busy': another process runs `while True: pass` meanwhile ('busy loop': the cores it got). 'other "
            f"load': cores kept busy by every other process during the block (hypervisor steal included), from "
            f"/proc/stat. Reference: ~{ref['ms_per_image_416_idle']:.0f} ms at 416 on an idle machine.")
    return sections


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Person detector benchmark: recall/precision and speed of YOLOX")
    p.add_argument("--data", default=str(DEFAULT_DATA), help=f"the shared data folder (default {DEFAULT_DATA})")
    p.add_argument("--model", default=None, help="YOLOX ONNX file (default: DATA/models/yolox_nano.onnx)")
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="input sizes (default 320 416 640)")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="intra-op thread counts to time (default: usable cores); accuracy uses the first")
    p.add_argument("--speed-images", type=int, default=20, help="COCO images per timed block (default 20)")
    p.add_argument("--blocks", type=int, default=4,
                   help="timed blocks per configuration; the least disturbed one is kept (default 4)")
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="seconds in all to spend waiting for other processes to go quiet (default 60)")
    p.add_argument("--no-accuracy", action="store_true", help="skip recall/precision")
    p.add_argument("--no-speed", action="store_true", help="skip timing")
    p.add_argument("--accuracy-from", default=None,
                   help="reuse the accuracy part of an earlier detector.json (e.g. from a --no-speed run)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for detector.json and detector.md")
    p.add_argument("--note", default="", help="text stored with the results (e.g. how the machine was quieted)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    results = run_benchmark(DetectorBench(
        data=args.data, model=args.model, sizes=args.sizes, threads=args.threads, speed_images=args.speed_images,
        blocks=args.blocks, quiet_wait=args.quiet_wait, accuracy=not args.no_accuracy, speed=not args.no_speed,
        accuracy_from=args.accuracy_from, out=args.out, note=args.note,
        command=shlex.join(["python", "benchmarks/bench_detector.py", *argv]),
    ))
    for f in results.get("files", []):
        print(f"wrote {f}")
    return 0
