"""``PosePredictor``: images in, people's keypoints in image coordinates out, with crops batched across images.

Preprocessing, flip test and decoding follow the released models' evaluation (see the reference spec):
box -> centre/scale at the input's aspect ratio with 1.25 padding, affine crop, RGB, ImageNet mean/std;
the heatmaps of the crop and of its mirror are averaged; DARK decoding; the inverse crop affine. The
model, its keypoint set and its input size come from ``tpose.load_pose_model`` (the one loader).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codecs import PIXEL_STD, normalize_batch
from ..data.keypoint_sets import KeypointSet
from ..engine.metrics import oks_nms, rescore
from ..factory import LoadedModel, load_pose_model
from ..utils.cores import CoreBudget, native_bf16
from ..weights.int8 import check_int8, find_int8
from .detector import PersonBoxes, PersonDetector
from .images import as_rgb_image, check_boxes
from .options import ACCURATE_FLAGS, REALTIME, DetectorOptions, PredictorOptions
from .results import person_record
from .sources import Detections, Frame, ImageSource, load_detections, open_source

# keypoints scoring above this count towards the person score (the released evaluation's value)
PERSON_SCORE_THRESHOLD = 0.2
_DEFAULTS = PredictorOptions()  # the one home of PosePredictor's keyword defaults
_DETECTOR_DEFAULTS = DetectorOptions()


@dataclass
class PersonPose:
    """One person: ``keypoints`` [K, 2] (x, y in image pixels), ``scores`` [K], ``box`` (x, y, w, h)."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    box_score: float = 1.0
    score: float = 0.0
    keypoint_names: tuple[str, ...] = field(default=(), repr=False)
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: keypoints as ``{name: [x, y, score]}`` when names are known, else ``[[x, y, score], ...]``."""
        return person_record(self, self.keypoint_names or None)


def person_score(keypoint_scores: np.ndarray, box_score: float, threshold: float = PERSON_SCORE_THRESHOLD) -> float:
    """Box score x mean of the keypoint scores above ``threshold`` (0 when none is)."""
    return float(rescore(np.asarray(keypoint_scores).reshape(1, -1), float(box_score), threshold)[0])


def choose_precision(precision: str, loaded: LoadedModel) -> tuple[str, str]:
    """The precision that runs (``"realtime"`` resolved for this CPU and these weights) and a one-line note
    saying so. ``"int8"`` on PyTorch weights needs their shipped int8 model; an ``.onnx`` file runs as it is."""
    cpu = loaded.device.type == "cpu"
    int8_file = find_int8(loaded.weights) if loaded.backend == "torch" and cpu else None
    if loaded.backend != "torch":
        kind = str(loaded.metadata.get("precision", "fp32"))
        if precision == "bf16":
            raise ValueError(f"precision bf16 is a PyTorch path; {loaded.weights} is an ONNX file ({kind})")
        if precision == "int8" and kind != "int8":
            raise ValueError(f"precision int8: {loaded.weights} is an {kind} ONNX file, not an int8 one "
                             "(make one with `tpose export --int8`)")
        return kind, f"{kind} ONNX Runtime ({Path(str(loaded.weights)).name})"
    if precision == "int8" and int8_file is None:
        raise ValueError(f"precision int8: no int8 model ships beside {loaded.weights} (only the shipped weights "
                         "have one); make one with `tpose export --int8` and pass the .onnx as --weights")
    if precision != REALTIME:
        return precision, f"{precision} {'ONNX Runtime (shipped int8 model)' if precision == 'int8' else 'PyTorch'}"
    # measured fastest first (benchmarks/results/video.md): the int8 model ran the pose network faster than bf16
    # autocast even on CPUs with native bf16, and bf16 beats fp32 only where bf16 is native
    if int8_file is not None:
        return "int8", (f"real-time path: the shipped int8 model (ONNX Runtime), no flip test; accurate path: "
                        f"{ACCURATE_FLAGS}")
    if native_bf16(loaded.device):
        return "bf16", (f"real-time path: bf16 PyTorch (native bf16 here; no int8 model ships with these weights), "
                        f"no flip test; accurate path: {ACCURATE_FLAGS}")
    return "fp32", (f"real-time path: fp32 PyTorch (no native bf16, no int8 model for these weights), no flip "
                    f"test; accurate path: {ACCURATE_FLAGS}")


def load_int8(loaded: LoadedModel, threads: int | None = None) -> LoadedModel:
    """The int8 model shipped beside ``loaded``'s weights, refused unless it records their SHA-256."""
    int8_file = find_int8(loaded.weights)
    if int8_file is None:
        raise ValueError(f"no int8 model beside {loaded.weights}")
    int8 = load_pose_model(int8_file, backend="onnxruntime", device=loaded.device, input_size=loaded.input_size,
                           keypoint_set=loaded.keypoint_set, threads=threads)
    check_int8(int8.metadata, str(loaded.weights), int8_file)
    return int8


class PosePredictor:
    """Keypoints of the people in images, given their boxes (or the whole image as one box).

    ``model`` is a TransPose (or any module mapping [B, 3, H, W] to [B, K, H/4, W/4] heatmaps), a registry
    name (``transpose_r_a4``...), a weights file (tpose ``.safetensors`` or a released ``.pth``) or an
    exported ``.onnx`` (run by ONNX Runtime; ``backend`` picks it from the suffix by default). ``weights``
    is a tag of the weights registry, a path, or True for the variant's default tag; with neither
    ``model`` nor ``weights`` the weights shipped with tpose are used. ``input_size`` is (H, W), by default
    the weights'. The keypoint set comes from ``keypoint_set``, else the weights' metadata, else the
    keypoint count (see ``tpose.load_pose_model``). Images are RGB; ``channel_order="bgr"`` takes OpenCV's.

    ``detector`` finds the people when no boxes are given: ``"auto"`` (YOLOX-Nano, fetched once; see
    ``default_detector``), a YOLOX ``.onnx`` path, any :class:`PersonDetector`, or None for the whole image
    as one person. Detected persons pass OKS-NMS at ``nms_threshold``.

    Speed: the PyTorch path runs in channels_last memory on the CPU (``memory_format="auto"``; measured the
    fastest fp32 path, benchmarks/results/int8.md). ``precision``: ``"fp32"`` (the default, the accurate
    path), ``"bf16"`` (autocast, 2.3x faster on CPUs with native bf16, 10-20x slower without), ``"int8"``
    (the int8 ONNX model shipped beside the weights, ``<stem>_int8.onnx``, run by ONNX Runtime; refused
    unless its recorded weights hash is these weights', see ``tpose.weights.int8``), or ``"realtime"``: the
    fastest of these that passes the accuracy gate, as measured: the shipped int8 model where the weights
    have one (faster than bf16 even on CPUs with native bf16, and 1.3-2x fp32 without), else bf16 where
    the CPU has it natively, else fp32. The predictor used to pick no int8 by itself;
    now the real-time path (videos and cameras, ``tpose predict``) does, for the reason it already took bf16:
    a frame rate is the point there, and the gate (at most 0.005 PCK@0.2 below fp32 without the flip test on
    LSPET validation and the MPII split, measured when the file is built and kept in its metadata) bounds
    what it costs. Photos keep fp32 unless asked. Attention maps (``return_attention``) always come from the
    fp32 PyTorch model. ``precision_note`` says in one line which path runs. ``threads``: PyTorch intra-op
    threads; None (default) follows the cores other processes leave free (see ``CoreBudget``), which kept a
    forward pass beside one busy process at 1.5x its idle time instead of 2.9x.

    The keyword defaults are :class:`~tpose.inference.options.PredictorOptions`' (their one home);
    :meth:`from_options` builds a predictor from such an object, as the command line does.
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        weights: str | Path | bool | None = None,
        keypoint_set: str | Path | KeypointSet | None = _DEFAULTS.keypoint_set,
        device: str | torch.device = _DEFAULTS.device,
        input_size: tuple[int, int] | None = _DEFAULTS.input_size,
        flip_test: bool = _DEFAULTS.flip_test,
        decode: str = _DEFAULTS.decode,
        batch_size: int = _DEFAULTS.batch_size,
        backend: str | None = _DEFAULTS.backend,
        channel_order: str = _DEFAULTS.channel_order,
        *,
        detector: str | Path | PersonDetector | None = _DETECTOR_DEFAULTS.detector,
        nms_threshold: float | None = _DEFAULTS.nms_threshold,
        precision: str = _DEFAULTS.precision,
        memory_format: str = _DEFAULTS.memory_format,
        threads: int | None = _DEFAULTS.threads,
    ) -> None:
        options = PredictorOptions(keypoint_set, str(device), input_size, flip_test, decode, batch_size, backend,
                                   channel_order, nms_threshold, precision, memory_format, threads)
        options.check()
        self.options = options
        loaded = load_pose_model(model, weights, backend=backend, device=device, input_size=input_size,
                                 keypoint_set=keypoint_set, threads=threads)
        self.fp32_model: nn.Module | None = None  # the PyTorch model kept for attention maps when int8 runs
        precision, why = choose_precision(precision, loaded)
        if precision == "int8" and loaded.backend == "torch":
            self.fp32_model = loaded.model
            loaded = load_int8(loaded, threads)
        self.precision_note = why
        self.loaded = loaded
        self.model: nn.Module = loaded.model
        self.keypoint_set: KeypointSet = loaded.keypoint_set
        self.input_size: tuple[int, int] = loaded.input_size
        self.codec = loaded.codec
        self.device = loaded.device
        self.backend = loaded.backend
        self.flip_test = flip_test
        self.decode = decode
        self.batch_size = int(batch_size)
        self.channel_order = channel_order
        self.nms_threshold = nms_threshold
        self.precision = precision
        torch_cpu = self.backend == "torch" and self.device.type == "cpu"
        self.channels_last = memory_format == "channels_last" or (memory_format == "auto" and torch_cpu)
        if self.channels_last and self.backend == "torch":
            self.model.to(memory_format=torch.channels_last)
        self._budget = CoreBudget() if threads is None and torch_cpu else None
        if threads is not None and self.backend == "torch":
            torch.set_num_threads(int(threads))
        self._flip_index = self.keypoint_set.flip_index()
        self._detector_options = DetectorOptions(detector)
        self._detector_spec = self._detector_options.detector
        self._detector: PersonDetector | None = detector if isinstance(detector, PersonDetector) else None
        self.timings: Counter[str] = Counter()  # seconds per stage since construction (see predict_rgb)

    @classmethod
    def from_options(
        cls,
        model: str | Path | nn.Module | None,
        weights: str | Path | bool | None,
        options: PredictorOptions,
        detector: DetectorOptions | PersonDetector | None = None,
    ) -> PosePredictor:
        """A predictor built from typed options (what the CLI jobs do); ``detector`` None: the whole image."""
        # built now: a missing detector file fails before the model loads
        spec = detector.build() if isinstance(detector, DetectorOptions) else detector
        return cls(model, weights, detector=spec, **options.as_kwargs())

    @property
    def detector(self) -> PersonDetector | None:
        """The person detector used where no boxes are given (built on first use); None: the whole image."""
        if self._detector is None and self._detector_spec is not None:
            self._detector = self._detector_options.build()
        return self._detector

    def detect(self, image: str | Path | np.ndarray) -> PersonBoxes:
        """The people the detector finds in one image (whole image as one box when there is no detector)."""
        rgb = self.image(image)
        if self.detector is None:
            h, w = rgb.shape[:2]
            return PersonBoxes(np.array([[0.0, 0.0, w, h]], np.float32), np.ones(1, np.float32))
        return self.detector(rgb)

    # ------------------------------------------------------------------ preprocessing
    @property
    def aspect_ratio(self) -> float:
        return self.codec.aspect_ratio

    def image(self, image: str | Path | np.ndarray, where: str = "image") -> np.ndarray:
        """``image`` as the RGB uint8 array the predictor works on (see ``as_rgb_image``)."""
        return as_rgb_image(image, self.channel_order, where)

    def center_scale(self, box: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop centre and scale (units of 200 px) of a box (x, y, w, h)."""
        return self.codec.box_to_center_scale(box)

    def crop_patch(
        self, image: np.ndarray, box: Sequence[float] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The uint8 RGB crop [H, W, 3] of ``box`` with its centre and scale."""
        center, scale = self.center_scale(box)
        return self.codec.crop(image, center, scale), center, scale

    def preprocess(
        self, image: str | Path | np.ndarray, box: Sequence[float] | np.ndarray | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Normalised crop tensor [3, H, W] (CPU) of ``box`` (default: whole image), its centre and scale."""
        rgb = self.image(image)
        h, w = rgb.shape[:2]
        box = np.array([0.0, 0.0, float(w), float(h)], np.float32) if box is None else box
        patch, center, scale = self.crop_patch(rgb, box)
        return normalize_batch(torch.from_numpy(patch[None]))[0], center, scale

    # ------------------------------------------------------------------ network
    def _net(self, x: torch.Tensor, return_attention: bool = False, keep_heads: bool = False) -> Any:
        if self._budget is not None:
            n = self._budget.threads()
            if n != torch.get_num_threads():
                torch.set_num_threads(n)
        if self.channels_last and self.backend == "torch":
            x = x.contiguous(memory_format=torch.channels_last)
        if return_attention:  # explanations: always the fp32 PyTorch model's attention
            net = self.fp32_model if self.fp32_model is not None else self.model
            return net(x, return_attention=True, keep_heads=keep_heads)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                    and self.backend == "torch" else contextlib.nullcontext())
        with autocast:
            return self.model(x)

    @torch.inference_mode()
    def forward_crops(
        self, crops: torch.Tensor | np.ndarray, return_attention: bool = False, keep_heads: bool = False
    ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """Heatmaps [N, K, h, w] (float32, flip-averaged when ``flip_test``) of crops, in chunks of ``batch_size``.

        ``crops`` are normalised tensors [N, 3, H, W] (stacked :meth:`preprocess` outputs) or uint8 RGB patches
        [N, H, W, 3]. With ``return_attention`` also each layer's attention of the unflipped crops,
        [N, L, L] (or [N, heads, L, L] with ``keep_heads``), as float32 arrays.
        """
        if isinstance(crops, np.ndarray):
            if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
                raise ValueError(f"numpy crops must be uint8 RGB patches [N, H, W, 3], got {crops.dtype} {crops.shape}")
            as_patches = True
        elif isinstance(crops, torch.Tensor) and crops.dim() == 4 and crops.shape[1] == 3:
            as_patches = False
        else:
            raise ValueError(f"crops must be a tensor [N, 3, H, W] or uint8 patches [N, H, W, 3], got {type(crops)}")
        heatmaps: list[np.ndarray] = []
        attention: list[list[np.ndarray]] = []
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            if as_patches:
                x = normalize_batch(torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device))
            else:
                x = chunk.to(self.device).float()
            n = x.shape[0]
            maps = None
            if self.flip_test:
                out = self._net(torch.cat([x, x.flip(3)]), return_attention, keep_heads)
                hm_both, maps = out if return_attention else (out, None)
                hm_both = hm_both.float()
                hm = 0.5 * (hm_both[:n] + self.codec.flip_back(hm_both[n:], self._flip_index))
                maps = None if maps is None else [m[:n] for m in maps]
            else:
                out = self._net(x, return_attention, keep_heads)
                hm, maps = out if return_attention else (out, None)
            heatmaps.append(hm.float().cpu().numpy())
            if maps is not None:
                attention.append([m.float().cpu().numpy() for m in maps])
        if not heatmaps:
            empty = np.zeros((0, self.keypoint_set.num_keypoints, *self.codec.heatmap_size), np.float32)
            return (empty, []) if return_attention else empty
        all_heatmaps = np.concatenate(heatmaps)
        if not return_attention:
            return all_heatmaps
        layers = [np.concatenate([chunk[i] for chunk in attention]) for i in range(len(attention[0]))]
        return all_heatmaps, layers

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        image: str | Path | np.ndarray,
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        box_scores: Sequence[float] | np.ndarray | None = None,
    ) -> list[PersonPose]:
        """People in one image (a path, or an array in the predictor's channel order); ``boxes`` [N, 4] are
        (x, y, w, h). Without boxes the detector finds them (see the class doc): an image with nobody in it
        gives no person."""
        return self.predict_batch(
            [image], None if boxes is None else [boxes], None if box_scores is None else [box_scores]
        )[0]

    def predict_batch(
        self,
        images: Sequence[str | Path | np.ndarray],
        boxes: Sequence[Sequence[Sequence[float]] | np.ndarray | None] | None = None,
        box_scores: Sequence[Sequence[float] | np.ndarray | None] | None = None,
    ) -> list[list[PersonPose]]:
        """:meth:`predict` for many images at once: every crop of every image goes through the network in
        shared batches. ``boxes[i]`` / ``box_scores[i]`` belong to ``images[i]`` (None: whole image)."""
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"{len(boxes)} box lists for {len(images)} images")
        if box_scores is not None and len(box_scores) != len(images):
            raise ValueError(f"{len(box_scores)} box score lists for {len(images)} images")
        rgbs = [self.image(img, str(img) if isinstance(img, (str, Path)) else f"image {i}")
                for i, img in enumerate(images)]
        names = [str(img) if isinstance(img, (str, Path)) else f"image {i}" for i, img in enumerate(images)]
        return self.predict_rgb(rgbs, boxes, box_scores, names)

    def predict_rgb(
        self,
        rgbs: Sequence[np.ndarray],
        boxes: Sequence[Any] | None = None,
        box_scores: Sequence[Any] | None = None,
        names: Sequence[str] | None = None,
    ) -> list[list[PersonPose]]:
        """:meth:`predict_batch` for images that are RGB uint8 arrays already (video frames): no conversion.

        ``self.timings`` accumulates the seconds spent per stage (detect, crop, network, decode, nms)."""
        names = names if names is not None else [f"image {i}" for i in range(len(rgbs))]
        clock = time.perf_counter
        patches: list[np.ndarray] = []
        centers: list[np.ndarray] = []
        scales: list[np.ndarray] = []
        crop_boxes: list[np.ndarray] = []
        crop_scores: list[float] = []
        counts: list[int] = []
        detected = []
        for i, rgb in enumerate(rgbs):
            given = None if boxes is None else boxes[i]
            scores = None if box_scores is None else box_scores[i]
            if given is None and self._detector_spec is not None:
                t0 = clock()
                found = self.detector(rgb)
                self.timings["detect"] += clock() - t0
                given, scores = found.boxes, found.scores
                detected.append(i)
            b, s = check_boxes(rgb, given, scores, where=names[i])
            t0 = clock()
            for box, score in zip(b, s, strict=True):
                patch, center, scale = self.crop_patch(rgb, box)
                patches.append(patch)
                centers.append(center)
                scales.append(scale)
                crop_boxes.append(box)
                crop_scores.append(float(score))
            counts.append(len(b))
            self.timings["crop"] += clock() - t0
        persons = self._poses_from_patches(patches, centers, scales, crop_boxes, crop_scores)
        t0 = clock()
        out: list[list[PersonPose]] = []
        start = 0
        for i, n in enumerate(counts):
            found = persons[start : start + n]
            if i in detected and self.nms_threshold is not None:
                found = self.suppress(found, self.nms_threshold)  # duplicates of one person from near boxes
            out.append(found)
            start += n
        self.timings["nms"] += clock() - t0
        return out

    def _poses_from_patches(
        self,
        patches: list[np.ndarray],
        centers: list[np.ndarray],
        scales: list[np.ndarray],
        boxes: list[np.ndarray],
        box_scores: list[float],
    ) -> list[PersonPose]:
        if not patches:
            return []
        t0 = time.perf_counter()
        heatmaps = self.forward_crops(np.stack(patches))
        t1 = time.perf_counter()
        assert isinstance(heatmaps, np.ndarray)
        points, scores = self.codec.decode_to_image(heatmaps, np.stack(centers), np.stack(scales), self.decode)
        self.timings["network"] += t1 - t0
        self.timings["decode"] += time.perf_counter() - t1
        names = self.keypoint_set.names
        return [
            PersonPose(
                keypoints=points[i],
                scores=scores[i],
                box=np.asarray(boxes[i], dtype=np.float32),
                box_score=float(box_scores[i]),
                score=person_score(scores[i], box_scores[i]),
                keypoint_names=names,
            )
            for i in range(len(patches))
        ]

    def suppress(self, persons: Sequence[PersonPose], threshold: float = 0.9) -> list[PersonPose]:
        """Greedy OKS non-maximum suppression (the released evaluation's, at 0.9): duplicates of one person
        from overlapping detector boxes collapse into the best-scored one. Kept persons stay in score order."""
        if len(persons) < 2:
            return list(persons)
        records = []
        for p in persons:
            _, scale = self.center_scale(p.box)
            records.append({"keypoints": p.keypoints, "score": p.score,
                            "area": float(scale[0] * scale[1]) * PIXEL_STD**2})
        keep = oks_nms(records, threshold, self.keypoint_set.sigmas)
        return [persons[i] for i in keep]

    def predict_frames(
        self,
        source: ImageSource,
        detections: Detections | None = None,
        min_box_score: float = 0.0,
        nms_threshold: float | None = None,
    ) -> Iterator[tuple[Frame, list[PersonPose]]]:
        """(frame, persons) for every readable frame of a source, in order, batching crops across frames.

        With ``detections``, a frame's boxes are looked up by file name (video frames: by frame index);
        frames it has no boxes for get no persons. Without, the detector finds the people of each frame (the
        whole frame is one box when there is none). ``nms_threshold`` applies :meth:`suppress` per frame.
        """
        pending: list[tuple[Frame, np.ndarray | None, np.ndarray | None]] = []
        num_crops = 0
        for frame in source:
            if detections is None:
                b, s = None, None
                num_crops += 1
            else:
                key: int | str = frame.index if getattr(source, "kind", "") == "video" else frame.name
                found = detections.for_image(key)
                b, s = found if found is not None else (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
                keep = s >= min_box_score
                b, s = b[keep], s[keep]
                num_crops += len(b)
            pending.append((frame, b, s))
            if num_crops >= self.batch_size:
                yield from self._flush(pending, nms_threshold)
                pending, num_crops = [], 0
        yield from self._flush(pending, nms_threshold)

    def _flush(
        self, pending: list[tuple[Frame, np.ndarray | None, np.ndarray | None]], nms_threshold: float | None
    ) -> Iterator[tuple[Frame, list[PersonPose]]]:
        if not pending:
            return
        results = self.predict_rgb(  # frames are RGB already, whatever the predictor's channel order
            [f.image for f, _, _ in pending], [b for _, b, _ in pending], [s for _, _, s in pending],
            [f.name for f, _, _ in pending],
        )
        for (frame, _, _), persons in zip(pending, results, strict=True):
            yield frame, persons if nms_threshold is None else self.suppress(persons, nms_threshold)

    def predict_path(
        self,
        path: str | Path | Sequence[str | Path] | ImageSource,
        detections: Detections | str | Path | None = None,
        min_box_score: float = 0.0,
        nms_threshold: float | None = None,
    ) -> Iterator[tuple[str, np.ndarray, list[PersonPose]]]:
        """(source name, RGB image, persons) for an image, a folder, a list of files or a video.

        Unreadable files in a folder are skipped (see ``open_source``; pass an opened source to read its
        ``skipped`` list afterwards). ``detections`` is a :class:`Detections` or a COCO detection-results file.
        """
        source = path if isinstance(path, ImageSource) else open_source(path)
        if detections is not None and not isinstance(detections, Detections):
            detections = load_detections(detections)
        for frame, persons in self.predict_frames(source, detections, min_box_score, nms_threshold):
            yield frame.name, frame.image, persons
