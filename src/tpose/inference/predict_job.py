"""``tpose predict``: predict on an image, folder, file list or video and write every output, reporting what
was skipped (unreadable files, frames a video could not decode, detections that match no image, empty
boxes) while the rest finishes.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from ..data.keypoint_sets import KeypointSet
from ..utils.files import atomic_write
from .detector import PersonDetector
from .draw import MIN_DRAWN_KEYPOINTS, MIN_DRAWN_PERSON_SCORE, draw_poses, worth_drawing
from .options import OutputOptions, PredictOptions
from .predictor import PersonPose, PosePredictor
from .results import coco_absent_joints, coco_keypoint_results, image_record, video_record, write_json
from .sources import (
    Detections,
    Frame,
    ImageFiles,
    ImageSource,
    image_id_for,
    load_coco_image_ids,
    load_detections,
    open_source,
)
from .video import PoseTracker

# the JPEG comment that marks every image ``tpose predict`` draws, so that a second run into the input folder
# leaves its own outputs alone (a user's file that merely ends in ``_pose.jpg`` is still predicted)
OUTPUT_MARK = b"tpose predict"
INTERRUPTED = 130  # the status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it


def run_predict(
    input: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    model: str | Path | nn.Module | None = None,
    weights: str | Path | bool | None = None,
    options: PredictOptions | None = None,
) -> dict[str, Any]:
    """Everything ``tpose predict`` does; returns the summary (``status`` 0 when everything was read).

    Writes ``<stem>_pose.jpg`` and ``<stem>_pose.json`` per image, or ``<stem>_pose.mp4`` and one
    ``<stem>_pose.json`` with every frame for a video, into ``output_dir``. Inputs whose stems clash (``a/photo.jpg``
    and ``b/photo.jpg``) keep the folder that tells them apart (``a__photo_pose.*``; see :func:`output_stems`),
    listed in the summary's ``renamed``; images tpose itself drew (a JPEG comment marks them) are left out of a
    folder or list and counted in ``own_outputs``. Ctrl-C stops the run with everything done so far written (a
    video's JSON holds the frames done) and ``status`` 130. ``options.output.coco_results``
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
    out_dir.mkdir(parents=True, exist_ok=True)  # an OSError names the folder; the CLI adds the fix (-o)
    # the detector is built before the source opens, so that a missing detector file fails before any work
    finder = None if options.detections is not None else options.detector.build()
    source = open_source(input, skip_errors=True, max_frames=options.max_frames)
    own_outputs = _leave_out_own_outputs(source)
    is_video = source.kind == "video"
    predictor = PosePredictor.from_options(model, weights, options.for_source(real_time=is_video), finder)
    if is_video:  # one line: which path runs, and the flags of the accurate one
        print(predictor.precision_note, file=sys.stderr)
    dets = load_detections(options.detections, gt_json=options.det_gt) if options.detections is not None else None
    follower = PoseTracker(predictor, options.tracking) if is_video and dets is None and finder is not None else None
    written = _Outputs(out_dir, options.output, predictor.keypoint_set, source, dets,
                       dets.name_to_id if dets is not None else (load_coco_image_ids(options.det_gt)
                                                                 if options.det_gt else {}),
                       stems=output_stems(source, out_dir) if isinstance(source, ImageFiles) else {})
    total = min(len(source), options.max_frames or len(source)) or None  # a camera: no total
    bar = tqdm(total=total, disable=not options.progress, unit="frame" if is_video else "img",
               desc="predict")
    interrupted = False
    try:
        for frame, persons in _poses(predictor, source, dets, follower, options.min_box_score):
            written.add(frame, persons)
            _advance(bar, written.processed + (0 if is_video else len(source.skipped)))  # skipped files: done
        if not is_video:
            _advance(bar, written.processed + len(source.skipped))
    except KeyboardInterrupt:  # Ctrl-C: keep what is done (the video's JSON, the COCO results) and say so
        interrupted = True
    finally:
        bar.close()
        written.close()
    written.finish(input, interrupted)
    summary = _summary(input, options, predictor, source, dets, finder, written)
    if own_outputs:
        summary["own_outputs"] = own_outputs
    if written.renamed:
        summary["renamed"] = written.renamed
    if interrupted:
        summary["interrupted"] = True
        summary["status"] = INTERRUPTED
    if follower is not None:
        summary["tracking"] = {**asdict(follower.options), "detector_runs": follower.detections_run,
                               "tracks": follower.tracker.next_id - 1}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def summary_notes(summary: dict[str, Any]) -> list[str]:
    """The lines ``tpose predict`` prints about renamed outputs, left-out earlier outputs, persons found but too
    unsure to draw, and an interruption."""
    notes = []
    renamed = summary.get("renamed") or {}
    if renamed:
        shown = ", ".join(f"{k} -> {v}.*" for k, v in list(renamed.items())[:4]) + (" ..." if len(renamed) > 4 else "")
        notes.append(f"{len(renamed)} input(s) share their name with another input (or their outputs would "
                     f"overwrite one): their outputs keep a folder name, the extension or a number: {shown}")
    own = summary.get("own_outputs") or []
    if own:
        shown = ", ".join(Path(p).name for p in own[:4]) + (" ..." if len(own) > 4 else "")
        notes.append(f"left out {len(own)} image(s) that tpose predict drew earlier: {shown}")
    if summary.get("not_drawn"):
        notes.append(f"{summary['not_drawn']} of the {summary['persons']} person(s) found are not drawn: their poses "
                     f"are unsure (person score under {MIN_DRAWN_PERSON_SCORE}, or fewer than {MIN_DRAWN_KEYPOINTS} "
                     "keypoints over --draw-threshold), as for people cut off by the photo's edge or in dim "
                     "light; the JSON lists them with their scores")
    if summary.get("interrupted"):
        done = f"{summary['processed']} frame(s)" if summary.get("kind") == "video" else (
            f"{summary['processed']} image(s)")
        notes.append(f"interrupted: the outputs of the {done} done are written to {summary['output_dir']}; run the "
                     "same command again for the rest")
    return notes


def _advance(bar: tqdm, done: int) -> None:
    """Move the bar to ``done``; the last step is left to ``close()``, so that the final line is drawn once."""
    if bar.total is not None and done >= bar.total:
        bar.n = done
    else:
        bar.update(done - bar.n)


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
    stems: dict[int, str] = field(default_factory=dict)  # output stem of each input image, by its position
    renamed: dict[str, str] = field(default_factory=dict)  # input -> its outputs' stem, where the plain one clashed
    processed: int = 0
    persons: int = 0
    not_drawn: int = 0  # persons of photos found but too unsure to draw (see draw.worth_drawing)
    writer: Any = None

    @property
    def is_video(self) -> bool:
        return self.source.kind == "video"

    def add(self, frame: Frame, persons: list[PersonPose]) -> None:
        """Draw and write one frame's persons, then count them (so that a run stopped by Ctrl-C in between
        reports only what it wrote)."""
        drawn = None
        if self.options.save_images:
            drawn = draw_poses(frame.image, persons, self.keypoint_set, threshold=self.options.draw_threshold,
                               draw_boxes=self.options.draw_boxes)
            if not self.is_video:
                self.not_drawn += sum(not worth_drawing(p, self.options.draw_threshold) for p in persons)
        image_id = self._add_video_frame(frame, persons, drawn) if self.is_video else self._add_image(
            frame, persons, drawn)
        if self.options.coco_results is not None:
            self.coco.extend(coco_keypoint_results(image_id, persons, keypoint_set=self.keypoint_set))
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

    def _add_video_frame(self, frame: Frame, persons: list[PersonPose], drawn: np.ndarray | None) -> int:
        if drawn is not None:
            if self.writer is None:
                self.writer, self.files["video"] = _open_video_writer(self.out_dir, self.source, drawn.shape)
            self.writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        self.frames.append((frame.index, persons))
        return frame.index

    def _add_image(self, frame: Frame, persons: list[PersonPose], drawn: np.ndarray | None) -> int:
        stem = self.stems.get(frame.index) or _plain_stem(frame.name)
        if stem != _plain_stem(frame.name):
            self.renamed[str(frame.path or frame.name)] = f"{stem}_pose"
        image_id = image_id_for(frame.name, self.name_to_id)
        if drawn is not None:
            self.files["images"].append(str(_write_image(self.out_dir / f"{stem}_pose.jpg", drawn, frame.name)))
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

    def finish(self, input: object, interrupted: bool = False) -> None:
        """The files written once every frame is in (or once Ctrl-C stopped the run: then the frames done, with
        ``"interrupted": true`` in a video's JSON): a video's JSON, the COCO results file."""
        if self.is_video and self.options.save_json:
            extra = {"interrupted": True} if interrupted else {}
            record = video_record(str(input), self.source.fps, self.source.frame_size, self.frames,
                                  self.keypoint_set, **extra)
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
        "not_drawn": written.not_drawn,
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


def _plain_stem(name: str) -> str:
    """The outputs' stem of an input named ``name`` (a path in a folder keeps its subfolders, joined by ``__``)."""
    return Path(name).with_suffix("").as_posix().replace("/", "__")


def output_stems(source: ImageFiles, out_dir: Path) -> dict[int, str]:
    """The stem of each input's outputs, by position, such that no two inputs write the same file and no output
    overwrites an input.

    An input keeps its plain stem unless another one has it: then the clashing inputs keep as many of their
    folders as tell them apart (``a/photo.jpg`` -> ``a__photo``), else their extension (``photo.png`` ->
    ``photo_png``), else (the same file twice) a number (``photo_2``). A number is also added where the
    outputs would land on an input of this run (``-o`` the input folder, which holds ``x.jpg`` and the user's
    own ``x_pose.jpg``).
    """
    names = [source.name_of(p) for p in source.paths]
    stems = [_plain_stem(n) for n in names]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, stem in enumerate(stems):
        groups[stem.casefold()].append(i)  # casefold: photo.jpg and Photo.png clash on macOS and Windows
    for members in groups.values():
        if len(members) > 1:
            for i, stem in zip(members, _distinct_stems([source.paths[i] for i in members], stems[members[0]]),
                               strict=True):
                stems[i] = stem
    inputs = {_resolved(p) for p in source.paths}
    taken: set[str] = set()
    out: dict[int, str] = {}
    for i, stem in enumerate(stems):
        chosen, n = stem, 1
        while chosen.casefold() in taken or _resolved(out_dir / f"{chosen}_pose.jpg") in inputs:
            n += 1
            chosen = f"{stem}_{n}"
        taken.add(chosen.casefold())
        out[i] = chosen
    return out


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # a loop of symbolic links: compare it as given
        return path


def _distinct_stems(paths: list[Path], stem: str) -> list[str]:
    """Stems for inputs that share ``stem``: the fewest trailing folders that tell the files apart, else the
    extension; the same file given twice gets the same stem here (numbered afterwards)."""
    files = list(dict.fromkeys(_resolved(p) for p in paths))  # distinct files, in order
    chosen = [stem] * len(files)
    folders = [f.parent.parts for f in files]
    for depth in range(1, max(len(f) for f in folders) + 1):
        tried = ["__".join([*f[-depth:], stem]).replace("/", "") for f in folders]
        if len({t.casefold() for t in tried}) == len(tried):
            chosen = tried
            break
    else:
        tried = [f"{stem}_{f.suffix.lstrip('.')}" for f in files]
        if len({t.casefold() for t in tried}) == len(tried):
            chosen = tried
    by_file = dict(zip(files, chosen, strict=True))
    return [by_file[_resolved(p)] for p in paths]


def _leave_out_own_outputs(source: ImageSource) -> list[str]:
    """Drop the images tpose drew (see :data:`OUTPUT_MARK`) from a folder or a list of files; their names.

    A single image given on its own is predicted whatever it is: the user asked for it by name.
    """
    if not isinstance(source, ImageFiles) or source.kind == "image":
        return []
    own = [p for p in source.paths if is_tpose_output(p)]
    if own and len(own) == len(source.paths):
        where = source.root if source.root is not None else "the files given"
        raise ValueError(f"{where}: every image here ({len(own)}) was drawn by tpose predict (e.g. {own[0].name}); "
                         "give the folder or files of the original images")
    if own:
        drop = set(own)
        source.paths = [p for p in source.paths if p not in drop]
    return [str(p) for p in own]


def is_tpose_output(path: str | Path) -> bool:
    """Whether ``path`` is a JPEG that ``tpose predict`` drew: its comment segment starts with :data:`OUTPUT_MARK`
    (read from the first few KB; any other file, or one that cannot be read, is not)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False  # the reader reports it when it comes to it
    if head[:2] != b"\xff\xd8":
        return False
    at = 2
    while at + 4 <= len(head) and head[at] == 0xFF:
        marker, length = head[at + 1], int.from_bytes(head[at + 2:at + 4], "big")
        if marker == 0xFE:
            return head[at + 4:at + 4 + len(OUTPUT_MARK)] == OUTPUT_MARK
        if marker in (0xDA, 0xD9):  # the image data or its end: no comment before it
            return False
        at += 2 + length
    return False


def _marked_jpeg(bgr: np.ndarray, note: str) -> bytes:
    """The JPEG of ``bgr`` with a comment segment (``OUTPUT_MARK`` and ``note``) after its JFIF header."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {bgr.shape} image as JPEG")
    data = buf.tobytes()
    text = (OUTPUT_MARK + b": poses drawn on " + note.encode("utf-8", "replace"))[:60000]
    at = 2
    if data[2:4] == b"\xff\xe0":  # JFIF's APP0 must stay first
        at = 4 + int.from_bytes(data[4:6], "big")
    return data[:at] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[at:]


def _write_image(path: Path, rgb: np.ndarray, input_name: str) -> Path:
    data = _marked_jpeg(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), input_name)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))  # an OSError names the file


def _open_video_writer(out_dir: Path, source: Any, shape: tuple[int, ...]) -> tuple[Any, str]:
    path = out_dir / f"{source.name}_pose.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(source.fps), (shape[1], shape[0]))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video here (a folder you cannot write to, or an OpenCV "
                      "built without video writing): give another -o, or --no-images to write the JSON only")
    return writer, str(path)
