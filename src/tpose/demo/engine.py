"""The demo's work, without any web code: check uploads, find and draw the people, write the downloads, and build
the attention explorer of one person. The web app (``tpose.demo.app``) only calls this, so it is tested alone.

One ``DemoEngine`` serves every browser session: each weights choice is loaded once and kept (a user's own file
replaces the previous own file), the detector is built once, and a lock runs one model call at a time, so
memory stays bounded however many sessions wait in the queue.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..data.image_io import ImageReadError
from ..explain import PageView, crop_person, run_attention, write_attention_page
from ..inference import (
    PersonDetector,
    PersonPose,
    PosePredictor,
    PoseTracker,
    VideoFrames,
    as_rgb_image,
    default_detector,
    draw_poses,
    image_record,
    video_record,
    write_json,
)
from .options import OWN_WEIGHTS, WEIGHTS_SUFFIXES, DemoOptions, WeightsChoice

# WebM with VP8: Chromium, Firefox and Safari play it, and OpenCV's FFmpeg writes it about 8x faster than VP9
# (0.08 s against 0.6 s a 768x576 frame here); ``mp4v`` MPEG-4 Part 2 does not play in Chromium
VIDEO_FOURCC = "VP80"
VIDEO_SUFFIX = ".webm"


class DemoInputError(ValueError):
    """An upload the app refuses (not an image or a video, too large, too long, corrupt): its text is shown."""


@dataclass
class PhotoResult:
    """One analysed photo: the picture, the people found in it and the drawn copy."""

    name: str
    image: np.ndarray  # RGB uint8
    persons: list[PersonPose]
    drawn: Path


@dataclass
class VideoResult:
    """One analysed video: the drawn WebM, its JSON, and how many frames and distinct ids it holds."""

    name: str
    drawn: Path
    frames: int
    fps: float
    track_ids: list[int]


@dataclass
class Analysis:
    """What one request produced: photos (explorable), videos, the downloads and the messages for the page."""

    photos: list[PhotoResult] = field(default_factory=list)
    videos: list[VideoResult] = field(default_factory=list)
    downloads: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def person_labels(self) -> list[str]:
        """One label per explorable person, in the order :meth:`person_at` reads them."""
        return [f"photo {i + 1} ({p.name}): person #{j} (score {person.score:.2f})"
                for i, p in enumerate(self.photos) for j, person in enumerate(p.persons)]

    def person_at(self, label: str) -> tuple[PhotoResult, int] | None:
        """The photo and person index a label of :meth:`person_labels` names; None for an unknown label."""
        k = 0
        for photo in self.photos:
            for j in range(len(photo.persons)):
                if self.person_labels()[k] == label:
                    return photo, j
                k += 1
        return None


def kind_of(path: Path, options: DemoOptions) -> str:
    """"image" or "video" from the file's content (never its name); anything else raises DemoInputError."""
    limits = options.limits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DemoInputError(f"{path.name}: the image is too large (more than {limits.max_image_pixels:,} pixels)") \
            from None
    except (OSError, ValueError, SyntaxError):
        width = height = 0
    if width and height:
        if width * height > limits.max_image_pixels:
            raise DemoInputError(f"{path.name}: the image is too large ({width}x{height} = {width * height:,} pixels; "
                                 f"the limit is {limits.max_image_pixels:,})")
        return "image"
    try:
        video = VideoFrames(path)
    except (ImageReadError, OSError, ValueError):
        raise DemoInputError(f"{path.name}: this is neither an image nor a video that can be read") from None
    # OpenCV opens many files as a video (a text file named .jpg as a one-image sequence): a frame must decode
    first = next(iter(VideoFrames(path, max_frames=1)), None) if video.num_frames > 0 else None
    if first is None or min(video.frame_size) <= 0:
        raise DemoInputError(f"{path.name}: this is neither an image nor a video that can be read (no frame decodes)")
    return "video"


def check_video(path: Path, options: DemoOptions) -> VideoFrames:
    """The video's frames, refused when longer or larger than the limits (from the container's header)."""
    limits = options.limits
    video = VideoFrames(path)
    seconds = video.num_frames / video.fps
    if seconds > limits.max_video_seconds:
        raise DemoInputError(f"{path.name}: the video lasts {seconds:.1f} s; the limit is "
                             f"{limits.max_video_seconds:g} s (cut it shorter)")
    h, w = video.frame_size
    if h * w > limits.max_video_pixels:
        raise DemoInputError(f"{path.name}: frames of {w}x{h} exceed the limit of {limits.max_video_pixels:,} pixels")
    return video


class DemoEngine:
    """The models, the detector and the work of the app, shared by all sessions (see the module doc)."""

    def __init__(self, options: DemoOptions | None = None) -> None:
        self.options = options or DemoOptions()
        self.work_dir = Path(self.options.work_dir or tempfile.mkdtemp(prefix="tpose-demo-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._predictors: dict[str, PosePredictor] = {}
        self._own_key: str | None = None
        self.detector: PersonDetector | None = None
        self.detector_message: str | None = None
        if self.options.detector is None:
            self.detector_message = "No person detector: each image is taken as one person."
        else:
            try:
                spec = self.options.detector
                self.detector = default_detector(None if spec == "auto" else spec, offline=True)
            except (OSError, ValueError, RuntimeError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                self.detector_message = (f"No person detector is available ({first}): each image is taken as one "
                                         "person. Start the app with --detector PATH/yolox_nano.onnx or set "
                                         "TPOSE_DETECTOR to find several people.")

    # ------------------------------------------------------------------ models
    @property
    def choices(self) -> list[str]:
        """The labels of the weights list, the user's own file last."""
        return [c.label for c in self.options.weights] + [OWN_WEIGHTS]

    def predictor(self, label: str, own_file: str | Path | None = None) -> PosePredictor:
        """The predictor of a weights choice, loaded on first use and kept; a user's file is keyed by its content."""
        if label == OWN_WEIGHTS:
            if own_file is None:
                raise DemoInputError("choose a weights file (.safetensors, .pth or .onnx) to use your own weights")
            path = Path(own_file)
            if path.suffix.lower() not in WEIGHTS_SUFFIXES:
                raise DemoInputError(f"{path.name}: a weights file ends in {', '.join(WEIGHTS_SUFFIXES)}")
            key = "own:" + hashlib.sha256(path.read_bytes()).hexdigest()
            choice = WeightsChoice(path.name, model=str(path))
        else:
            found = [c for c in self.options.weights if c.label == label]
            if not found:
                raise DemoInputError(f"unknown weights choice {label!r}")
            key, choice = "choice:" + label, found[0]
        if key not in self._predictors:
            if key.startswith("own:"):
                if self._own_key is not None:
                    self._predictors.pop(self._own_key, None)  # one user file in memory at a time
                self._own_key = key
            try:
                self._predictors[key] = PosePredictor(choice.model, weights=choice.weights, detector=self.detector,
                                                       precision=choice.precision)
            except (OSError, ValueError, RuntimeError, KeyError) as err:
                if key.startswith("own:"):
                    self._own_key = None
                raise DemoInputError(f"{choice.label}: these weights cannot be loaded ({err})") from err
        return self._predictors[key]

    # ------------------------------------------------------------------ requests
    def analyse(
        self,
        files: Sequence[str | Path],
        weights: str | None = None,
        own_file: str | Path | None = None,
        whole_image: bool = False,
    ) -> Analysis:
        """Every uploaded photo and video of one request; a refused file gets a message, the others go on."""
        t0 = time.perf_counter()
        out = Analysis()
        if self.detector_message:
            out.messages.append(self.detector_message)
        limits = self.options.limits
        if len(files) > limits.max_files:
            out.messages.append(f"{len(files)} files at once: the first {limits.max_files} are analysed")
            files = list(files)[: limits.max_files]
        try:
            predictor = self.predictor(weights or self.choices[0], own_file)
        except DemoInputError as err:
            out.messages.append(str(err))
            return out
        folder = self.work_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        records: list[dict[str, Any]] = []
        for file in files:
            path = Path(file)
            try:
                if kind_of(path, self.options) == "image":
                    photo = self._photo(predictor, path, folder, whole_image)
                    out.photos.append(photo)
                    out.downloads.append(photo.drawn)
                    records.append(image_record(path.name, photo.image.shape[:2], photo.persons,
                                                predictor.keypoint_set))
                else:
                    video, record = self._video(predictor, path, folder, whole_image)
                    out.videos.append(video)
                    out.downloads.append(video.drawn)
                    records.append(record)
            except (DemoInputError, ImageReadError) as err:
                out.messages.append(str(err))
        if records:
            out.downloads.insert(0, write_json(folder / "poses.json", {"weights": predictor.loaded.weights,
                                                                      "results": records}))
        found = sum(len(p.persons) for p in out.photos)
        if out.photos:
            out.messages.append(f"{found} person(s) in {len(out.photos)} photo(s).")
        out.seconds = time.perf_counter() - t0
        return out

    def _photo(self, predictor: PosePredictor, path: Path, folder: Path, whole_image: bool) -> PhotoResult:
        image = as_rgb_image(path)  # a corrupt file raises ImageReadError, shown as a message
        h, w = image.shape[:2]
        boxes = [[0.0, 0.0, float(w), float(h)]] if whole_image or self.detector is None else None
        with self._lock:
            persons = predictor.predict(image, boxes=boxes)
        # each person drawn with its number, the one the explorer's list shows
        numbered = [replace(p, track_id=j) for j, p in enumerate(persons)]
        drawn = draw_poses(image, numbered, predictor.keypoint_set, self.options.draw_threshold, draw_boxes=True)
        target = folder / f"{len(list(folder.iterdir())):02d}_{path.stem}_pose.jpg"
        cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        return PhotoResult(path.name, image, persons, target)

    def _video(self, predictor: PosePredictor, path: Path, folder: Path, whole_image: bool
               ) -> tuple[VideoResult, dict[str, Any]]:
        video = check_video(path, self.options)
        h, w = video.frame_size
        target = folder / f"{len(list(folder.iterdir())):02d}_{path.stem}_pose{VIDEO_SUFFIX}"
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), video.fps, (w, h))
        if not writer.isOpened():
            raise DemoInputError(f"{path.name}: this OpenCV cannot write {VIDEO_FOURCC} WebM video")
        tracker = None if whole_image or self.detector is None else PoseTracker(predictor)
        frames: list[tuple[int, list[PersonPose]]] = []
        ids: set[int] = set()
        try:
            for frame in video:
                if frame.image.shape[:2] != (h, w):
                    raise DemoInputError(f"{path.name}: the frame size changes inside the video")
                with self._lock:
                    if tracker is not None:
                        persons = tracker(frame.image, frame.index, frame.index / video.fps)
                    else:
                        persons = predictor.predict_rgb([frame.image], [[[0.0, 0.0, float(w), float(h)]]])[0]
                ids.update(p.track_id for p in persons if p.track_id is not None)
                frames.append((frame.index, persons))
                drawn = draw_poses(frame.image, persons, predictor.keypoint_set, self.options.draw_threshold,
                                   draw_boxes=True)
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        if not frames:
            target.unlink(missing_ok=True)
            raise DemoInputError(f"{path.name}: no frame of this video could be decoded (corrupt or unsupported)")
        problems = [s.reason for s in video.skipped]
        record = video_record(path.name, video.fps, (h, w), frames, predictor.keypoint_set)
        if problems:
            record["warnings"] = problems
        return VideoResult(path.name, target, len(frames), video.fps, sorted(ids)), record

    # ------------------------------------------------------------------ explorer
    def explorer_page(self, photo: PhotoResult, index: int, predictor: PosePredictor) -> str:
        """The HTML of ``tpose explain --html`` for one person of a photo: every layer and head (with their mean),
        fp32 attention of the person's crop, the keypoints the app drew (moved into the crop)."""
        person = photo.persons[index]
        net = predictor.fp32_model if predictor.fp32_model is not None else predictor.model  # int8: fp32 attention
        if not hasattr(net, "global_encoder") and not getattr(net, "attention_names", None):
            raise DemoInputError("these weights give no attention (an ONNX file exported without --attention): "
                                 "choose PyTorch weights to explore the attention")
        crop = crop_person(photo.image, person.box, predictor.input_size)
        with self._lock:
            att = run_attention(net, crop.tensor)
        heads = ["mean", *(f"head {h}" for h in range(att.num_heads))]
        attention = np.concatenate([att.attention.mean(axis=1, keepdims=True), att.attention], axis=1)
        kset = predictor.keypoint_set
        view = PageView(
            label=f"{photo.name}: person #{index}",
            image=crop.image,
            attention=attention,
            grid_hw=att.grid_hw,
            head_labels=heads,
            keypoints=crop.image_to_crop(np.asarray(person.keypoints, np.float64)),
            scores=np.asarray(person.scores, np.float32),
            names=kset.names,
            skeleton=kset.skeleton,
            colors=kset.colors,
        )
        page = write_attention_page(self.work_dir / f"explorer_{uuid.uuid4().hex[:12]}.html", [view],
                                    self.options.attention_threshold, title=f"Attention: {photo.name}, person #{index}")
        try:
            return page.read_text(encoding="utf-8")
        finally:
            page.unlink(missing_ok=True)


def summary(analysis: Analysis) -> dict[str, Any]:
    """A small JSON-ready account of a request (what the load test and the page report)."""
    return {"photos": len(analysis.photos), "persons": sum(len(p.persons) for p in analysis.photos),
            "videos": len(analysis.videos), "messages": analysis.messages, "seconds": round(analysis.seconds, 3)}

