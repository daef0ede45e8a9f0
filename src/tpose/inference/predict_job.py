"""``tpose predict``: predict on an image, folder, file list or video and write every output, reporting what
was skipped (unreadable files, frames a video could not decode, detections that match no image, empty
boxes) while the rest finishes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from ..data.keypoint_sets import KeypointSet
from ..utils.cores import native_bf16
from .detector import PersonDetector, default_detector
from .draw import draw_poses
from .predictor import PersonPose, PosePredictor
from .results import coco_absent_joints, coco_keypoint_results, image_record, video_record, write_json
from .sources import image_id_for, load_coco_image_ids, load_detections, open_source
from .video import PoseTracker, TrackingOptions


def run_predict(
    input: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    model: str | Path | nn.Module | None = None,
    weights: str | Path | bool | None = None,
    detections: str | Path | None = None,
    det_gt: str | Path | None = None,
    min_box_score: float = 0.0,
    nms_threshold: float | None = 0.9,
    draw_threshold: float = 0.3,
    device: str = "cpu",
    flip_test: bool | None = None,
    save_images: bool = True,
    save_json: bool = True,
    coco_results: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    keypoint_set: str | Path | KeypointSet | None = None,
    input_size: tuple[int, int] | None = None,
    decode: str = "dark",
    draw_boxes: bool = False,
    backend: str | None = None,
    detector: str | Path | PersonDetector | None = "auto",
    detector_size: int = 416,
    detector_threshold: float = 0.3,
    tracking: TrackingOptions | None = None,
    max_frames: int | None = None,
    precision: str = "auto",
    threads: int | None = None,
) -> dict[str, Any]:
    """Everything ``tpose predict`` does; returns the summary (``status`` 0 when everything was read).

    Writes ``<stem>_pose.jpg`` and ``<stem>_pose.json`` per image, or ``<stem>_pose.mp4`` and one
    ``<stem>_pose.json`` with every frame for a video, into ``output_dir``; ``coco_results`` names an
    optional COCO keypoint results file. Persons come from ``detections`` (a COCO detection-results file),
    else from ``detector`` ("auto": YOLOX-Nano at ``detector_size`` keeping boxes scoring at least
    ``detector_threshold``; a YOLOX .onnx path; a PersonDetector; None: the whole image as one person); they
    pass OKS-NMS at ``nms_threshold`` (None: off). Videos and cameras (``webcam:N``, stopped after
    ``max_frames``) are followed frame by frame as ``tracking`` says (ids, detection every N frames,
    smoothing: see ``tpose.inference.video``).

    ``flip_test`` and ``precision`` default (None / "auto") to the accurate path for images (flip test, fp32)
    and the real-time path for videos and cameras: no flip test, and bf16 autocast where the CPU has native
    bf16 (measured on the shipped weights: PCK@0.2 within 0.003 of fp32 on all three validation sets; see
    docs/results.md); pass them to choose. The summary lists skipped files, images the detections do
    not name, dropped boxes, images in which nobody was found, and for a video the frames read against the
    count its container claims.
    """
    started = time.perf_counter()
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if detections is not None or detector is None or isinstance(detector, PersonDetector):
        finder = None if detections is not None else detector
    else:  # built now, so that a missing detector file fails before any work
        finder = default_detector(None if str(detector) == "auto" else detector, detector_size, detector_threshold)
    source = open_source(input, skip_errors=True, max_frames=max_frames)
    real_time = source.kind == "video"
    flip_test = (not real_time) if flip_test is None else flip_test
    if precision == "auto":
        precision = "bf16" if real_time and native_bf16(device) else "fp32"
    predictor = PosePredictor(model, weights, keypoint_set=keypoint_set, device=device, input_size=input_size,
                              flip_test=flip_test, decode=decode, batch_size=batch_size, backend=backend,
                              detector=finder, nms_threshold=nms_threshold, precision=precision, threads=threads)
    kset = predictor.keypoint_set
    dets = load_detections(detections, gt_json=det_gt) if detections is not None else None
    name_to_id = dets.name_to_id if dets is not None else (load_coco_image_ids(det_gt) if det_gt else {})
    is_video = source.kind == "video"
    outputs: dict[str, Any] = {"images": [], "json": [], "video": None, "coco_results": None}
    coco: list[dict[str, Any]] = []
    unmatched: list[str] = []
    no_boxes: list[str] = []
    ids_by_order: list[str] = []
    frames_record: list[tuple[int, list[PersonPose]]] = []
    writer = None
    processed = persons_total = 0
    bar = tqdm(total=len(source) or None, disable=not progress, unit="frame" if is_video else "img", desc="predict")
    empty_images: list[str] = []
    follower = PoseTracker(predictor, tracking) if is_video and dets is None and finder is not None else None
    try:
        nms = nms_threshold if dets is not None else None
        if follower is not None:  # frame after frame: the tracker needs each frame's people before the next
            started_live = time.monotonic()
            results = ((frame, follower(frame.image, frame.index, time.monotonic() - started_live if source.live
                                        else frame.index / source.fps)) for frame in source)
        else:
            results = predictor.predict_frames(source, dets, min_box_score, nms)
        for frame, persons in results:
            if not persons and not is_video:
                empty_images.append(frame.name)
            processed += 1
            persons_total += len(persons)
            bar.n = processed + (0 if is_video else len(source.skipped))  # skipped files count as done
            bar.refresh()
            if dets is not None and not is_video:
                known = dets.image_id(frame.name)
                if known is None:
                    unmatched.append(frame.name)  # its image id cannot be told
                elif int(known) not in dets.boxes:
                    no_boxes.append(frame.name)  # the detections hold no box for it
            stem = Path(frame.name).with_suffix("").as_posix().replace("/", "__")
            drawn = None
            if save_images:
                drawn = draw_poses(frame.image, persons, kset, threshold=draw_threshold, draw_boxes=draw_boxes)
            if is_video:
                frames_record.append((frame.index, persons))
                if drawn is not None:
                    if writer is None:
                        writer, outputs["video"] = _open_video_writer(out_dir, source, drawn.shape)
                    writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                image_id: int | None = frame.index
            else:
                if drawn is not None:
                    outputs["images"].append(str(_write_image(out_dir / f"{stem}_pose.jpg", drawn)))
                if save_json:
                    record = image_record(
                        frame.name, frame.image.shape[:2], persons, kset, image_id=image_id_for(frame.name, name_to_id)
                    )
                    outputs["json"].append(str(write_json(out_dir / f"{stem}_pose.json", record)))
                image_id = image_id_for(frame.name, name_to_id)
                if image_id is None:
                    ids_by_order.append(frame.name)
                    image_id = processed
            if coco_results is not None:
                coco.extend(coco_keypoint_results(image_id, persons, keypoint_set=kset))
        if not is_video:
            bar.n = processed + len(source.skipped)
            bar.refresh()
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    if is_video and save_json:
        stem = source.name
        record = video_record(str(input), source.fps, source.frame_size, frames_record, kset)
        outputs["json"].append(str(write_json(out_dir / f"{stem}_pose.json", record)))
    if coco_results is not None:
        outputs["coco_results"] = str(write_json(coco_results, coco, indent=None))
    summary: dict[str, Any] = {
        "input": str(input),
        "kind": source.kind,
        "output_dir": str(out_dir),
        "model": predictor.loaded.name,
        "weights": predictor.loaded.weights,
        "backend": predictor.backend,
        "flip_test": predictor.flip_test,
        "precision": predictor.precision if predictor.backend == "torch" else predictor.loaded.metadata.get(
            "precision", "fp32"),
        "keypoint_set": kset.name,
        "boxes": (
            f"detections from {detections} (score >= {min_box_score}, OKS-NMS {nms_threshold})" if dets is not None
            else f"detector {finder!r} (OKS-NMS {nms_threshold})" if finder is not None else "whole image"
        ),
        "no_person": empty_images,  # images in which nobody was found
        "processed": processed,
        "persons": persons_total,
        "skipped": [s.to_dict() for s in source.skipped],
        "outputs": outputs,
    }
    problems = bool(source.skipped) or processed == 0
    if is_video:
        summary["frames"] = {"read": processed, "claimed": len(source)}
        if follower is not None:
            summary["tracking"] = {**asdict(follower.options), "detector_runs": follower.detections_run,
                                   "tracks": follower.tracker.next_id - 1}
    if dets is not None:
        summary["dropped_boxes"] = {"empty": list(dets.empty_boxes), "total": dets.dropped}
        if not is_video:
            summary["unmatched"] = unmatched  # files whose image id the detections cannot tell: no persons
            summary["without_detections"] = no_boxes  # files whose image id has no record in the detections
            if processed and len(unmatched) + len(no_boxes) == processed:
                summary["error"] = (f"none of the {processed} image(s) matches an image id of {detections} (images "
                                    "are matched by numeric file name, or by --det-gt's file names)")
                problems = True
    if coco_results is not None:
        # COCO-17 joints this model does not predict: zeros in the results file, never made up
        summary["coco_absent_joints"] = coco_absent_joints(kset)
    if coco_results is not None and ids_by_order:
        summary["ids_by_order"] = ids_by_order  # files given their position as COCO image id
    summary["status"] = 1 if problems else 0
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _write_image(path: Path, rgb: np.ndarray) -> Path:
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"{path}: could not write the image")
    return path


def _open_video_writer(out_dir: Path, source: Any, shape: tuple[int, ...]) -> tuple[Any, str]:
    path = out_dir / f"{source.name}_pose.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(source.fps), (shape[1], shape[0]))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video here")
    return writer, str(path)
