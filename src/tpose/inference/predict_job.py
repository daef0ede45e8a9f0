"""``tpose predict``: predict on an image, folder, file list or video and write every output, reporting what
was skipped (unreadable files, frames a video could not decode, detections that match no image, empty
boxes) while the rest finishes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from ..data.keypoint_sets import KeypointSet
from .detector import PersonDetector
from .draw import draw_poses
from .options import OutputOptions, PredictOptions
from .predictor import PersonPose, PosePredictor
from .results import coco_absent_joints, coco_keypoint_results, image_record, video_record, write_json
from .sources import Detections, Frame, ImageSource, image_id_for, load_coco_image_ids, load_detections, open_source
from .video import PoseTracker


def run_predict(
    input: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    model: str | Path | nn.Module | None = None,
    weights: str | Path | bool | None = None,
    options: PredictOptions | None = None,
) -> dict[str, Any]:
    """Everything ``tpose predict`` does; returns the summary (``status`` 0 when everything was read).

    Writes ``<stem>_pose.jpg`` and ``<stem>_pose.json`` per image, or ``<stem>_pose.mp4`` and one
    ``<stem>_pose.json`` with every frame for a video, into ``output_dir``; ``options.output.coco_results``
    names an optional COCO keypoint results file. Persons come from ``options.detections`` (a COCO
    detection-results file), else from ``options.detector`` (see :class:`DetectorOptions`); they pass OKS-NMS
    at ``options.predictor.nms_threshold`` (None: off). Videos and cameras (``webcam:N``, stopped after
    ``options.max_frames``) are followed frame by frame as ``options.tracking`` says (ids, detection every N
    frames, smoothing: see ``tpose.inference.video``).

    Flip test and precision default to the accurate path for images and the real-time path for videos and
    cameras (see :meth:`PredictOptions.for_source`; measured on the shipped weights: bf16 PCK@0.2 within
    0.003 of fp32 on all three validation sets, docs/results.md). The summary lists skipped files, images the
    detections do not name, dropped boxes, images in which nobody was found, and for a video the frames read
    against the count its container claims.
    """
    options = options or PredictOptions()
    started = time.perf_counter()
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the detector is built before the source opens, so that a missing detector file fails before any work
    finder = None if options.detections is not None else options.detector.build()
    source = open_source(input, skip_errors=True, max_frames=options.max_frames)
    is_video = source.kind == "video"
    predictor = PosePredictor.from_options(model, weights, options.for_source(real_time=is_video), finder)
    if is_video:  # one line: which path runs, and the flags of the accurate one
        print(predictor.precision_note, file=sys.stderr)
    dets = load_detections(options.detections, gt_json=options.det_gt) if options.detections is not None else None
    follower = PoseTracker(predictor, options.tracking) if is_video and dets is None and finder is not None else None
    written = _Outputs(out_dir, options.output, predictor.keypoint_set, source, dets,
                       dets.name_to_id if dets is not None else (load_coco_image_ids(options.det_gt)
                                                                 if options.det_gt else {}))
    bar = tqdm(total=len(source) or None, disable=not options.progress, unit="frame" if is_video else "img",
               desc="predict")
    try:
        for frame, persons in _poses(predictor, source, dets, follower, options.min_box_score):
            written.add(frame, persons)
            bar.n = written.processed + (0 if is_video else len(source.skipped))  # skipped files count as done
            bar.refresh()
        if not is_video:
            bar.n = written.processed + len(source.skipped)
            bar.refresh()
    finally:
        bar.close()
        written.close()
    written.finish(input)
    summary = _summary(input, options, predictor, source, dets, finder, written)
    if follower is not None:
        summary["tracking"] = {**asdict(follower.options), "detector_runs": follower.detections_run,
                               "tracks": follower.tracker.next_id - 1}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _poses(
    predictor: PosePredictor,
    source: ImageSource,
    dets: Detections | None,
    follower: PoseTracker | None,
    min_box_score: float,
) -> Iterator[tuple[Frame, list[PersonPose]]]:
    """(frame, persons) of every readable frame: tracked frame after frame for a video with a detector (the
    tracker needs each frame's people before the next), else batched across frames."""
    if follower is None:
        nms = predictor.nms_threshold if dets is not None else None
        yield from predictor.predict_frames(source, dets, min_box_score, nms)
        return
    started_live = time.monotonic()
    for frame in source:
        at = time.monotonic() - started_live if source.live else frame.index / source.fps
        yield frame, follower(frame.image, frame.index, at)


@dataclass
class _Outputs:
    """The files of one prediction run, written frame by frame, and what the summary reports about them."""

    out_dir: Path
    options: OutputOptions
    keypoint_set: KeypointSet
    source: ImageSource
    dets: Detections | None
    name_to_id: dict[str, int]
    files: dict[str, Any] = field(default_factory=lambda: {"images": [], "json": [], "video": None,
                                                           "coco_results": None})
    coco: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # files whose image id the detections cannot tell
    no_boxes: list[str] = field(default_factory=list)  # files whose image id has no record in the detections
    ids_by_order: list[str] = field(default_factory=list)  # files given their position as COCO image id
    empty_images: list[str] = field(default_factory=list)  # images in which nobody was found
    frames: list[tuple[int, list[PersonPose]]] = field(default_factory=list)
    processed: int = 0
    persons: int = 0
    writer: Any = None

    @property
    def is_video(self) -> bool:
        return self.source.kind == "video"

    def add(self, frame: Frame, persons: list[PersonPose]) -> None:
        """Count, draw and write one frame's persons."""
        if not persons and not self.is_video:
            self.empty_images.append(frame.name)
        self.processed += 1
        self.persons += len(persons)
        if self.dets is not None and not self.is_video:
            known = self.dets.image_id(frame.name)
            if known is None:
                self.unmatched.append(frame.name)
            elif int(known) not in self.dets.boxes:
                self.no_boxes.append(frame.name)
        drawn = None
        if self.options.save_images:
            drawn = draw_poses(frame.image, persons, self.keypoint_set, threshold=self.options.draw_threshold,
                               draw_boxes=self.options.draw_boxes)
        image_id = self._add_video_frame(frame, persons, drawn) if self.is_video else self._add_image(
            frame, persons, drawn)
        if self.options.coco_results is not None:
            self.coco.extend(coco_keypoint_results(image_id, persons, keypoint_set=self.keypoint_set))

    def _add_video_frame(self, frame: Frame, persons: list[PersonPose], drawn: np.ndarray | None) -> int:
        self.frames.append((frame.index, persons))
        if drawn is not None:
            if self.writer is None:
                self.writer, self.files["video"] = _open_video_writer(self.out_dir, self.source, drawn.shape)
            self.writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        return frame.index

    def _add_image(self, frame: Frame, persons: list[PersonPose], drawn: np.ndarray | None) -> int:
        stem = Path(frame.name).with_suffix("").as_posix().replace("/", "__")
        image_id = image_id_for(frame.name, self.name_to_id)
        if drawn is not None:
            self.files["images"].append(str(_write_image(self.out_dir / f"{stem}_pose.jpg", drawn)))
        if self.options.save_json:
            record = image_record(frame.name, frame.image.shape[:2], persons, self.keypoint_set, image_id=image_id)
            self.files["json"].append(str(write_json(self.out_dir / f"{stem}_pose.json", record)))
        if image_id is None:
            self.ids_by_order.append(frame.name)
            image_id = self.processed
        return image_id

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()

    def finish(self, input: object) -> None:
        """The files written once every frame is in: a video's JSON, the COCO results file."""
        if self.is_video and self.options.save_json:
            record = video_record(str(input), self.source.fps, self.source.frame_size, self.frames,
                                  self.keypoint_set)
            self.files["json"].append(str(write_json(self.out_dir / f"{self.source.name}_pose.json", record)))
        if self.options.coco_results is not None:
            self.files["coco_results"] = str(write_json(self.options.coco_results, self.coco, indent=None))


def _summary(
    input: object,
    options: PredictOptions,
    predictor: PosePredictor,
    source: ImageSource,
    dets: Detections | None,
    finder: PersonDetector | None,
    written: _Outputs,
) -> dict[str, Any]:
    """What was done, where the boxes came from, what was skipped; ``status`` 1 when anything went unread."""
    nms = predictor.nms_threshold
    summary: dict[str, Any] = {
        "input": str(input),
        "kind": source.kind,
        "output_dir": str(written.out_dir),
        "model": predictor.loaded.name,
        "weights": predictor.loaded.weights,
        "backend": predictor.backend,
        "flip_test": predictor.flip_test,
        "precision": predictor.precision if predictor.backend == "torch" else predictor.loaded.metadata.get(
            "precision", "fp32"),
        "keypoint_set": written.keypoint_set.name,
        "boxes": (
            f"detections from {options.detections} (score >= {options.min_box_score}, OKS-NMS {nms})"
            if dets is not None else f"detector {finder!r} (OKS-NMS {nms})" if finder is not None else "whole image"
        ),
        "no_person": written.empty_images,
        "processed": written.processed,
        "persons": written.persons,
        "skipped": [s.to_dict() for s in source.skipped],
        "outputs": written.files,
    }
    problems = bool(source.skipped) or written.processed == 0
    if written.is_video:
        summary["frames"] = {"read": written.processed, "claimed": len(source)}
    if dets is not None:
        summary["dropped_boxes"] = {"empty": list(dets.empty_boxes), "total": dets.dropped}
        if not written.is_video:
            summary["unmatched"] = written.unmatched
            summary["without_detections"] = written.no_boxes
            n = written.processed
            if n and len(written.unmatched) + len(written.no_boxes) == n:
                summary["error"] = (f"none of the {n} image(s) matches an image id of {options.detections} "
                                    "(images are matched by numeric file name, or by --det-gt's file names)")
                problems = True
    if options.output.coco_results is not None:
        # COCO-17 joints this model does not predict: zeros in the results file, never made up
        summary["coco_absent_joints"] = coco_absent_joints(written.keypoint_set)
        if written.ids_by_order:
            summary["ids_by_order"] = written.ids_by_order
    summary["status"] = 1 if problems else 0
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
