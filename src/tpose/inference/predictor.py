"""``PosePredictor``: person boxes in, keypoints in image coordinates out, with crops batched across images.

Preprocessing, flip test and decoding follow the released models' evaluation (see the reference spec):
box -> centre/scale at the input's aspect ratio with 1.25 padding, affine crop, RGB, ImageNet mean/std;
the heatmaps of the crop and of its mirror are averaged; DARK decoding; the inverse crop affine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..codecs.decode import decode_heatmaps, flip_heatmaps_back, heatmap_to_image
from ..data.affine import box_to_center_scale, crop
from ..data.image_io import read_image
from ..data.keypoint_sets import (
    KeypointSet,
    default_keypoint_set,
    get_keypoint_set,
    keypoint_set_from_metadata,
)
from ..engine.metrics import oks_nms, rescore
from .results import person_record
from .sources import Detections, Frame, ImageSource, load_detections, open_source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BOX_PADDING = 1.25
# keypoints scoring above this count towards the person score (the released evaluation's value)
PERSON_SCORE_THRESHOLD = 0.2


@dataclass
class PersonPose:
    """One person: ``keypoints`` [K, 2] (x, y in image pixels), ``scores`` [K], ``box`` (x, y, w, h)."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    box_score: float = 1.0
    score: float = 0.0
    keypoint_names: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: keypoints as ``{name: [x, y, score]}`` when names are known, else ``[[x, y, score], ...]``."""
        return person_record(self, self.keypoint_names or None)


def person_score(keypoint_scores: np.ndarray, box_score: float, threshold: float = PERSON_SCORE_THRESHOLD) -> float:
    """Box score x mean of the keypoint scores above ``threshold`` (0 when none is)."""
    return float(rescore(np.asarray(keypoint_scores).reshape(1, -1), float(box_score), threshold)[0])


def _sidecar_metadata(path: Path) -> dict[str, Any] | None:
    """The ``<stem>.json`` beside an exported model file, if there is one."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{side}: cannot read the model's metadata: {err}") from None
    return data if isinstance(data, dict) else None


class _OnnxRunner:
    """ONNX Runtime session behind the same call as the torch model (heatmaps only, first output)."""

    def __init__(self, path: Path, device: str) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.image_size = (shape[2], shape[3]) if all(isinstance(v, int) for v in shape[2:4]) else None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        out_shape = self.session.get_outputs()[0].shape
        self.num_keypoints = out_shape[1] if len(out_shape) == 4 and isinstance(out_shape[1], int) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).numpy()
        if self.fixed_batch is None:
            return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])
        outs = []
        for start in range(0, len(arr), self.fixed_batch):
            chunk = arr[start : start + self.fixed_batch]
            n = len(chunk)
            if n < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self.session.run(None, {self.input_name: chunk})[0][:n])
        return torch.from_numpy(np.concatenate(outs))


class PosePredictor:
    """Keypoints of the people in images, given their boxes (or the whole image as one box).

    ``model`` is a TransPose (or any module mapping [B, 3, H, W] to [B, K, H/4, W/4] heatmaps), a registry
    name (``transpose_r_a4``...), a weights file (tpose ``.safetensors`` or a released ``.pth``), or, with
    ``backend="onnx"``, an ``.onnx`` file. ``checkpoint`` loads weights into a named model or module; tpose
    metadata saved with them gives the architecture and the keypoint set. ``input_size`` is (H, W), by
    default the model's ``config.image_size``. The keypoint set comes from ``keypoint_set``, else the
    weights' metadata, else the keypoint count (COCO-17, LSP-14, MPII-16, or generic names).
    """

    def __init__(
        self,
        model: str | Path | nn.Module,
        checkpoint: str | Path | None = None,
        keypoint_set: str | Path | KeypointSet | None = None,
        device: str | torch.device = "cpu",
        input_size: tuple[int, int] | None = None,
        flip_test: bool = True,
        decode: str = "dark",
        batch_size: int = 32,
        backend: str = "torch",
        weights: str | Path | None = None,
    ) -> None:
        if weights is not None:
            # a tag of the weights registry ("lspet-128x96", "transpose_r_a4:coco-256x192") or a path
            if checkpoint is not None:
                raise ValueError("give either weights= (a tag or path) or checkpoint=, not both")
            from ..hub import resolve_weights_arg

            checkpoint = resolve_weights_arg(weights, model if isinstance(model, str) else None)
        if backend == "onnxruntime":
            backend = "onnx"
        if decode not in ("dark", "argmax"):
            raise ValueError(f"decode must be 'dark' or 'argmax', got {decode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        self.device = torch.device(device)
        self.flip_test = flip_test
        self.decode = decode
        self.batch_size = int(batch_size)
        self.backend = backend
        self.model: nn.Module | None = None
        self._onnx: _OnnxRunner | None = None
        found_set: KeypointSet | None = None
        num_keypoints: int | None = None
        model_size: tuple[int, int] | None = None
        if backend == "onnx":
            if isinstance(model, nn.Module) or Path(str(model)).suffix.lower() != ".onnx":
                raise ValueError(f"backend='onnx' needs the path of an .onnx file, got {model!r}")
            if not Path(model).is_file():
                raise FileNotFoundError(f"{model}: no such ONNX file")
            self._onnx = _OnnxRunner(Path(model), str(device))
            model_size = self._onnx.image_size
            num_keypoints = self._onnx.num_keypoints
            found_set = keypoint_set_from_metadata(self._onnx.metadata) or keypoint_set_from_metadata(
                _sidecar_metadata(Path(model))
            )
        else:
            self.model, found_set = _build_torch_model(model, checkpoint)
            self.model.to(self.device).eval()
            config = getattr(self.model, "config", None)
            if config is not None:
                model_size = tuple(config.image_size)
                num_keypoints = int(config.num_keypoints)
        size = input_size if input_size is not None else model_size
        if size is None:
            raise ValueError("input_size (H, W) is needed: the model does not record the size it was trained at")
        self.input_size: tuple[int, int] = (int(size[0]), int(size[1]))
        if keypoint_set is not None:
            self.keypoint_set = get_keypoint_set(keypoint_set)
        elif found_set is not None:
            self.keypoint_set = found_set
        elif num_keypoints is not None:
            self.keypoint_set = default_keypoint_set(num_keypoints)
        else:
            raise ValueError("keypoint_set is needed: the model does not say how many keypoints it predicts")
        if num_keypoints is not None and self.keypoint_set.num_keypoints != num_keypoints:
            raise ValueError(
                f"keypoint set {self.keypoint_set.name!r} has {self.keypoint_set.num_keypoints} keypoints but the "
                f"model predicts {num_keypoints}"
            )
        self._flip_index = self.keypoint_set.flip_index()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255.0

    # ------------------------------------------------------------------ preprocessing
    @property
    def aspect_ratio(self) -> float:
        return self.input_size[1] / self.input_size[0]

    def center_scale(self, box: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop centre and scale (units of 200 px) of a box (x, y, w, h)."""
        return box_to_center_scale(np.asarray(box, dtype=np.float64), self.aspect_ratio, BOX_PADDING)

    def crop_patch(
        self, image: np.ndarray, box: Sequence[float] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The uint8 RGB crop [H, W, 3] of ``box`` with its centre and scale."""
        center, scale = self.center_scale(box)
        h, w = self.input_size
        return crop(image, center, scale, 0.0, (w, h)), center, scale

    def preprocess(
        self, image: str | Path | np.ndarray, box: Sequence[float] | np.ndarray | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Normalised crop tensor [3, H, W] (CPU) of ``box`` (default: whole image), its centre and scale."""
        image = as_rgb_image(image)
        box = whole_image_box(image) if box is None else box
        patch, center, scale = self.crop_patch(image, box)
        tensor = self._normalise(torch.from_numpy(patch[None]).to(self.device))[0].cpu()
        return tensor, center, scale

    def _normalise(self, patches: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> float [N, 3, H, W] with ImageNet mean/std, on the predictor's device."""
        x = patches.to(self.device).permute(0, 3, 1, 2).float()
        return (x - self._mean) / self._std

    # ------------------------------------------------------------------ network
    def _net(self, x: torch.Tensor, return_attention: bool = False, keep_heads: bool = False) -> Any:
        if self._onnx is not None:
            if return_attention:
                raise NotImplementedError("attention maps need the torch backend (backend='torch')")
            return self._onnx(x).to(self.device)
        assert self.model is not None
        if return_attention:
            return self.model(x, return_attention=True, keep_heads=keep_heads)
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
            x = self._normalise(torch.from_numpy(np.ascontiguousarray(chunk))) if as_patches else chunk.to(self.device)
            x = x.float()
            n = x.shape[0]
            maps = None
            if self.flip_test:
                out = self._net(torch.cat([x, x.flip(3)]), return_attention, keep_heads)
                hm_both, maps = out if return_attention else (out, None)
                hm = 0.5 * (hm_both[:n] + flip_heatmaps_back(hm_both[n:], self._flip_index))
                maps = None if maps is None else [m[:n] for m in maps]
            else:
                out = self._net(x, return_attention, keep_heads)
                hm, maps = out if return_attention else (out, None)
            heatmaps.append(hm.float().cpu().numpy())
            if maps is not None:
                attention.append([m.float().cpu().numpy() for m in maps])
        if not heatmaps:
            h, w = self.input_size
            empty = np.zeros((0, self.keypoint_set.num_keypoints, h // 4, w // 4), np.float32)
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
        """People in one image (a path or an RGB array [H, W, 3]); ``boxes`` [N, 4] are (x, y, w, h).

        Without boxes the whole image is one person box with score 1.
        """
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
        patches: list[np.ndarray] = []
        centers: list[np.ndarray] = []
        scales: list[np.ndarray] = []
        crop_boxes: list[np.ndarray] = []
        crop_scores: list[float] = []
        counts: list[int] = []
        for i, img in enumerate(images):
            rgb = as_rgb_image(img)
            b, s = _check_boxes(
                rgb,
                None if boxes is None else boxes[i],
                None if box_scores is None else box_scores[i],
                where=f"image {i}",
            )
            for box, score in zip(b, s, strict=True):
                patch, center, scale = self.crop_patch(rgb, box)
                patches.append(patch)
                centers.append(center)
                scales.append(scale)
                crop_boxes.append(box)
                crop_scores.append(float(score))
            counts.append(len(b))
        persons = self._poses_from_patches(patches, centers, scales, crop_boxes, crop_scores)
        out: list[list[PersonPose]] = []
        start = 0
        for n in counts:
            out.append(persons[start : start + n])
            start += n
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
        heatmaps = self.forward_crops(np.stack(patches))
        assert isinstance(heatmaps, np.ndarray)
        coords, scores = decode_heatmaps(heatmaps, method=self.decode)
        hm_h, hm_w = heatmaps.shape[2:]
        points = heatmap_to_image(coords, np.stack(centers), np.stack(scales), heatmap_size=(hm_w, hm_h))
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
            records.append({"keypoints": p.keypoints, "score": p.score, "area": float(scale[0] * scale[1]) * 200**2})
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
        frames it has no boxes for get no persons. Without, each frame is one whole-image box.
        ``nms_threshold`` applies :meth:`suppress` per frame.
        """
        pending: list[tuple[Frame, np.ndarray, np.ndarray]] = []
        num_crops = 0
        for frame in source:
            if detections is None:
                b = whole_image_box(frame.image)[None]
                s = np.ones(1, np.float32)
            else:
                key: int | str = frame.index if getattr(source, "kind", "") == "video" else frame.name
                found = detections.for_image(key)
                b, s = found if found is not None else (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
                keep = s >= min_box_score
                b, s = b[keep], s[keep]
            pending.append((frame, b, s))
            num_crops += len(b)
            if num_crops >= self.batch_size:
                yield from self._flush(pending, nms_threshold)
                pending, num_crops = [], 0
        yield from self._flush(pending, nms_threshold)

    def _flush(
        self, pending: list[tuple[Frame, np.ndarray, np.ndarray]], nms_threshold: float | None
    ) -> Iterator[tuple[Frame, list[PersonPose]]]:
        if not pending:
            return
        results = self.predict_batch(
            [f.image for f, _, _ in pending], [b for _, b, _ in pending], [s for _, _, s in pending]
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


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


def _build_torch_model(
    model: str | Path | nn.Module, checkpoint: str | Path | None
) -> tuple[nn.Module, KeypointSet | None]:
    """The model and, when its weights record one, its keypoint set.

    A weights file given as ``model`` rebuilds its own architecture (tpose metadata, else read off the
    released weights); a name with ``checkpoint`` keeps the name's architecture unless the checkpoint
    carries tpose metadata, which records the architecture it was trained with (keypoints, input size).
    """
    from ..models import create_model, list_models
    from ..models.checkpoint import load_model, load_weights, read_metadata

    if isinstance(model, nn.Module):
        if checkpoint is None:
            return model, keypoint_set_from_metadata(getattr(model, "metadata", None))
        load_weights(model, checkpoint)
        return model, keypoint_set_from_metadata(read_metadata(checkpoint))
    name = str(model)
    if name not in list_models() and (Path(name).suffix in WEIGHT_SUFFIXES or Path(name).is_file()):
        if checkpoint is not None:
            raise ValueError(f"model {name!r} is a weights file already; do not also pass checkpoint={checkpoint!r}")
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name}: no such weights file")
        loaded = load_model(name)
        return loaded, keypoint_set_from_metadata(getattr(loaded, "metadata", None))
    if name not in list_models():
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(list_models())} or a weights file")
    if checkpoint is None:
        return create_model(name), None
    meta = read_metadata(checkpoint)
    if meta and isinstance(meta.get("model"), Mapping):
        loaded = load_model(checkpoint)
        return loaded, keypoint_set_from_metadata(meta)
    return create_model(name, checkpoint=checkpoint), keypoint_set_from_metadata(meta)


def as_rgb_image(image: str | Path | np.ndarray) -> np.ndarray:
    """An RGB uint8 array [H, W, 3] from a path or an array (grey [H, W] is repeated; RGBA loses alpha)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image [H, W, 3], got an array of shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"empty image of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def whole_image_box(image: np.ndarray) -> np.ndarray:
    """(0, 0, W, H): the box used when no person boxes are given."""
    h, w = image.shape[:2]
    return np.array([0.0, 0.0, float(w), float(h)], dtype=np.float32)


def _check_boxes(image: np.ndarray, boxes: Any, scores: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if boxes is None:
        b = whole_image_box(image)[None]
        s = np.ones(1, np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        if len(s) != 1:
            raise ValueError(f"{where}: {len(s)} box scores for the whole-image box")
        return b, s
    b = np.asarray(boxes, dtype=np.float32)
    if b.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{where}: boxes must be [N, 4] (x, y, w, h), got shape {b.shape}")
    bad = np.flatnonzero(~np.isfinite(b).all(axis=1) | (b[:, 2] <= 0) | (b[:, 3] <= 0))
    if bad.size:
        raise ValueError(f"{where}: box {int(bad[0])} {b[bad[0]].tolist()} needs finite x, y and positive w, h")
    s = np.ones(len(b), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
    if len(s) != len(b):
        raise ValueError(f"{where}: {len(s)} box scores for {len(b)} boxes")
    return b, s


def run_predict(
    input: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    model: str | Path | nn.Module = "transpose_r_a4",
    weights: str | Path | None = None,
    detections: str | Path | None = None,
    det_gt: str | Path | None = None,
    min_box_score: float = 0.0,
    nms_threshold: float | None = 0.9,
    draw_threshold: float = 0.3,
    device: str = "cpu",
    flip_test: bool = True,
    save_images: bool = True,
    save_json: bool = True,
    coco_results: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    keypoint_set: str | Path | None = None,
    input_size: tuple[int, int] | None = None,
    decode: str = "dark",
    draw_boxes: bool = False,
    backend: str = "torch",
) -> dict[str, Any]:
    """Everything ``tpose predict`` does: predict on an image, folder, file list or video and write the outputs.

    Writes ``<stem>_pose.jpg`` and ``<stem>_pose.json`` per image, or ``<stem>_pose.mp4`` and one
    ``<stem>_pose.json`` with every frame for a video, into ``output_dir``; ``coco_results`` names an
    optional COCO keypoint results file. With ``detections``, persons pass OKS-NMS at ``nms_threshold``
    (None: off). Unreadable images are skipped and listed in the summary.
    """
    import time
    import warnings

    from tqdm import tqdm

    from .draw import draw_poses
    from .results import coco_keypoint_results, image_record, video_record, write_json
    from .sources import image_id_for, load_coco_image_ids

    started = time.perf_counter()
    if weights is None and isinstance(model, str) and not Path(model).suffix:
        warnings.warn(
            f"no weights given: {model} predicts with random initial weights (pass weights= or a .safetensors model)",
            stacklevel=2,
        )
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = PosePredictor(
        model,
        checkpoint=weights,
        keypoint_set=keypoint_set,
        device=device,
        input_size=input_size,
        flip_test=flip_test,
        decode=decode,
        batch_size=batch_size,
        backend=backend,
    )
    kset = predictor.keypoint_set
    source = open_source(input, skip_errors=True)
    dets = load_detections(detections, gt_json=det_gt) if detections is not None else None
    name_to_id = dets.name_to_id if dets is not None else (load_coco_image_ids(det_gt) if det_gt else {})
    is_video = source.kind == "video"
    outputs: dict[str, Any] = {"images": [], "json": [], "video": None, "coco_results": None}
    coco: list[dict[str, Any]] = []
    unmatched: list[str] = []
    ids_by_order: list[str] = []
    frames_record: list[tuple[int, list[PersonPose]]] = []
    writer = None
    processed = persons_total = 0
    bar = tqdm(total=len(source) or None, disable=not progress, unit="frame" if is_video else "img", desc="predict")
    try:
        nms = nms_threshold if dets is not None else None
        for frame, persons in predictor.predict_frames(source, dets, min_box_score, nms):
            processed += 1
            persons_total += len(persons)
            bar.update(1)
            if dets is not None and not is_video and dets.image_id(frame.name) is None:
                unmatched.append(frame.name)
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
                coco.extend(coco_keypoint_results(image_id, persons))
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    if is_video and save_json:
        stem = Path(str(input)).stem
        record = video_record(str(input), source.fps, source.frame_size, frames_record, kset)
        outputs["json"].append(str(write_json(out_dir / f"{stem}_pose.json", record)))
    if coco_results is not None:
        outputs["coco_results"] = str(write_json(coco_results, coco, indent=None))
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "input": str(input),
        "kind": source.kind,
        "output_dir": str(out_dir),
        "model": type(model).__name__ if isinstance(model, nn.Module) else str(model),
        "weights": None if weights is None else str(weights),
        "keypoint_set": kset.name,
        "boxes": (
            f"detections from {detections} (score >= {min_box_score}, OKS-NMS {nms_threshold})"
            if dets is not None
            else "whole image"
        ),
        "processed": processed,
        "persons": persons_total,
        "skipped": [s.to_dict() for s in source.skipped],
        "outputs": outputs,
        "seconds": round(seconds, 3),
    }
    if dets is not None and not is_video:
        summary["unmatched"] = unmatched  # files whose image id the detections cannot tell: no persons
    if coco_results is not None and ids_by_order:
        summary["ids_by_order"] = ids_by_order  # files given their position as COCO image id
    return summary


def _write_image(path: Path, rgb: np.ndarray) -> Path:
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"{path}: could not write the image")
    return path


def _open_video_writer(out_dir: Path, source: Any, shape: tuple[int, ...]) -> tuple[Any, str]:
    path = out_dir / f"{Path(source.path).stem}_pose.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(source.fps), (shape[1], shape[0]))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video here")
    return writer, str(path)
