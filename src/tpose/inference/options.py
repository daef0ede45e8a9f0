"""The options of prediction as typed objects: what the CLI builds once from its flags and hands down.

Each default lives here and only here: ``PosePredictor``'s keyword defaults read :class:`PredictorOptions`,
the detector flags of ``predict``, ``explain`` and ``eval --detector`` are parsed by :class:`DetectorOptions`,
and ``tpose predict``'s choices for videos (no flip test, the fastest precision within the accuracy gate on
this CPU) are made by :meth:`PredictOptions.for_source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..codecs import get_decoder
from ..data.keypoint_sets import KeypointSet
from .detector import PersonDetector, default_detector

PRECISIONS = ("fp32", "bf16", "int8")
# the real-time path's precision, resolved by the predictor once the weights and the CPU are known: the int8
# model shipped beside the weights (within 0.005 PCK@0.2 of fp32 without the flip test, its metadata says), else
# bf16 where the CPU has native bf16, else fp32 (the fastest first, as measured in benchmarks/results/video.md)
REALTIME = "realtime"
ACCURATE_FLAGS = "--flip --precision fp32"  # how a video asks for the accurate (photo) path
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
CHANNEL_ORDERS = ("rgb", "bgr")
WHOLE_IMAGE_WORDS = ("none", "whole", "whole-image")


@dataclass(frozen=True)
class DetectorOptions:
    """Who finds the people where no boxes are given.

    ``detector``: "auto" (YOLOX-Nano, see ``default_detector``), a YOLOX ``.onnx`` path, a built
    :class:`PersonDetector`, or None (the whole image is one person; "none" says the same).
    """

    detector: str | Path | PersonDetector | None = "auto"
    size: int = 416  # the detector's input side (a multiple of 32: 320 faster, 640 for small people)
    threshold: float = 0.3  # keep boxes scoring at least this

    def __post_init__(self) -> None:
        if isinstance(self.detector, str) and self.detector.lower() in WHOLE_IMAGE_WORDS:
            object.__setattr__(self, "detector", None)

    @property
    def whole_image(self) -> bool:
        return self.detector is None

    def build(self) -> PersonDetector | None:
        """The detector itself (a YOLOX file is resolved now, so that a missing one fails before any work)."""
        if self.detector is None or isinstance(self.detector, PersonDetector):
            return self.detector
        path = None if str(self.detector) == "auto" else self.detector
        return default_detector(path, self.size, self.threshold)


@dataclass(frozen=True)
class PredictorOptions:
    """How :class:`~tpose.inference.predictor.PosePredictor` runs; its keyword defaults are these fields'.

    ``input_size`` (H, W) and ``keypoint_set`` refine the weights' own (None: the weights'); ``backend``
    None picks ONNX Runtime for an ``.onnx`` file, else torch; ``threads`` None follows the free cores.
    """

    keypoint_set: str | Path | KeypointSet | None = None
    device: str = "cpu"
    input_size: tuple[int, int] | None = None
    flip_test: bool = True
    decode: str = "dark"
    batch_size: int = 32
    backend: str | None = None
    channel_order: str = "rgb"
    nms_threshold: float | None = 0.9  # OKS-NMS of detected persons (None: off)
    precision: str = "fp32"
    memory_format: str = "auto"
    threads: int | None = None

    def check(self) -> None:
        """Refuse values no predictor can run with, naming the accepted ones."""
        get_decoder(self.decode)  # an unregistered decoding method fails here, naming the registered ones
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")
        if self.precision not in (*PRECISIONS, REALTIME):
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or {REALTIME!r}, "
                             f"got {self.precision!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be auto, channels_last or contiguous, got {self.memory_format!r}")

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as PosePredictor keywords (shallow: a KeypointSet stays the same object)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


PREDICTOR_DEFAULTS = PredictorOptions()


@dataclass(frozen=True)
class TrackingOptions:
    """How a video is followed; the defaults are what ``tpose predict clip.mp4`` does."""

    detect_every: int = 1  # run the detector on every n-th frame (1: every frame)
    track: bool = True  # ids across frames
    smooth: bool = True  # One-Euro smoothing of the keypoints of each track
    # a track unseen for more frames than this is dropped (its id is not reused); 20 frames (2 s of vtest.avi)
    # bridge a person hidden behind a post or another walker
    max_lost_frames: int = 20
    # a box must overlap a track's (motion-predicted) box this much to continue it: small, fast walkers
    # overlap their last box little, and OKS of the poses separates neighbours (vtest.avi, docs/tracking.md)
    min_iou: float = 0.1
    predict_frames: int = 5  # a lost track's box keeps moving at its velocity for this many frames
    oks_weight: float = 0.5  # matching cost: (1 - w) * IoU + w * OKS of the poses
    keypoint_threshold: float = 0.3  # keypoints scoring at least this place a carried box
    min_person_score: float = 0.15  # a carried person whose mean keypoint score is below this is lost
    # a track matched for static_frames frames whose score never reached static_score and whose box centre
    # stayed within static_motion of its height is no person (the blue signpost of vtest.avi): it is dropped
    static_frames: int = 10
    static_score: float = 0.3
    static_motion: float = 0.1
    smooth_min_cutoff: float = 1.0  # One-Euro: Hz of smoothing at rest (lower: smoother, more lag)
    smooth_beta: float = 0.05  # One-Euro: how fast the cutoff rises with speed (higher: less lag when moving)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {self.detect_every}")


@dataclass(frozen=True)
class OutputOptions:
    """What ``tpose predict`` writes: drawn images/video, JSON per file, an optional COCO results file."""

    save_images: bool = True
    save_json: bool = True
    coco_results: str | Path | None = None
    draw_threshold: float = 0.3  # draw keypoints scoring at least this
    draw_boxes: bool = False


@dataclass(frozen=True)
class PredictOptions:
    """Everything ``tpose predict`` is told besides its input and output folder.

    ``flip_test`` and ``precision`` are "chosen by the source" by default (None / "auto"): the accurate path
    for images (``PredictorOptions``' flip test and fp32) and the real-time path for videos and cameras (no
    flip test, precision ``"realtime"``: the shipped int8 model where the weights have one, else bf16 where
    the CPU has native bf16, else fp32; the predictor resolves it); give them to choose. Persons come from
    ``detections`` (a COCO detection-results file, boxes scoring at least ``min_box_score``; ``det_gt`` names
    their images), else from ``detector``.
    """

    predictor: PredictorOptions = PREDICTOR_DEFAULTS
    flip_test: bool | None = None
    precision: str = "auto"
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    detections: str | Path | None = None
    det_gt: str | Path | None = None
    min_box_score: float = 0.0
    output: OutputOptions = field(default_factory=OutputOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    max_frames: int | None = None  # stop a video or camera after this many frames
    progress: bool = True

    def for_source(self, real_time: bool) -> PredictorOptions:
        """The predictor's options once the source is known (``real_time``: a video or a camera)."""
        flip = (PREDICTOR_DEFAULTS.flip_test and not real_time) if self.flip_test is None else self.flip_test
        precision = self.precision
        if precision == "auto":
            precision = REALTIME if real_time else PREDICTOR_DEFAULTS.precision
        return replace(self.predictor, flip_test=flip, precision=precision)
