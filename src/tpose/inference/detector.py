"""Person detection for the top-down pipeline: a small detector interface and YOLOX on ONNX Runtime.

TransPose needs a box per person. Any detector plugs in by implementing :class:`PersonDetector`: a call
from an RGB uint8 image [H, W, 3] to :class:`PersonBoxes` (x, y, w, h in image pixels, best score first).

:class:`YoloxDetector` runs a YOLOX ONNX file (COCO-80, class 0 = person; YOLOX-Nano is 3.7 MB and runs in
tens of milliseconds on two CPU cores). Its contract, measured on the official export:

- input ``images`` [1, 3, S, S] float32, **BGR, raw 0-255** (no mean/std), the image letterboxed at the
  top-left (resized by r = min(S / h, S / w)) and padded with 114;
- output [1, N, 85], rows over strides 8, 16, 32 (row-major per level): centre = (o[0:2] + grid) * stride,
  size = exp(o[2:4]) * stride, score of class c = o[4] * o[5 + c] (sigmoids already applied).

The official file's input is fixed at 416x416; its graph is size-agnostic, so other sizes (any multiple of
32: 320 for speed, 640 for large photos) run once the input and output dims are rewritten as symbolic.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..utils.boxes import nms
from ..utils.cores import usable_cores
from ..utils.ort import create_session
from ..weights.catalog import YOLOX_NANO
from ..weights.download import resolve_file

YOLOX_STRIDES = (8, 16, 32)
YOLOX_COLUMNS = 85  # 4 box + 1 objectness + 80 COCO classes
PERSON_CLASS = 0
PAD_VALUE = 114


class DetectorModelError(ValueError):
    """A detector model file is unreadable or not of the expected kind; the message names the file."""


@dataclass(frozen=True, eq=False)  # array fields: == would be ambiguous
class PersonBoxes:
    """Detected people of one image: ``boxes`` float32 [N, 4] (x, y, w, h in pixels), ``scores`` float32 [N].

    Always sorted by score, best first (the constructor sorts), so ``boxes[:k]`` are the k most confident.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(f"PersonBoxes: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
        order = np.argsort(-scores, kind="stable")
        object.__setattr__(self, "boxes", np.ascontiguousarray(boxes[order]))
        object.__setattr__(self, "scores", np.ascontiguousarray(scores[order]))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> PersonBoxes:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_xyxy(cls, xyxy: np.ndarray, scores: np.ndarray) -> PersonBoxes:
        """From corner boxes (x1, y1, x2, y2), as most detectors (torchvision's included) return them."""
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        return cls(np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1), scores)

    def xyxy(self) -> np.ndarray:
        """The boxes as corners (x1, y1, x2, y2), float32 [N, 4]."""
        return np.concatenate([self.boxes[:, :2], self.boxes[:, :2] + self.boxes[:, 2:]], axis=1)

    def above(self, min_score: float) -> PersonBoxes:
        """Only the boxes scoring at least ``min_score``."""
        keep = self.scores >= min_score
        return PersonBoxes(self.boxes[keep], self.scores[keep])


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that finds people: an RGB uint8 image [H, W, 3] in, :class:`PersonBoxes` out."""

    def __call__(self, image: np.ndarray) -> PersonBoxes: ...


def check_rgb_image(image: Any, who: str = "the detector") -> np.ndarray:
    """``image`` if it is an RGB uint8 array [H, W, 3]; a one-line error saying what was expected otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"shape {image.shape} dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{who} expects an RGB uint8 image [H, W, 3], got {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{who} got an empty image of shape {image.shape}")
    return image


def parse_input_size(size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from an int (square) or a pair; both must be positive multiples of 32 (YOLOX's stride)."""
    if isinstance(size, (int, np.integer)):
        hw = (int(size), int(size))
    else:
        values = tuple(int(v) for v in size)
        if len(values) != 2:
            raise ValueError(f"input_size must be an int or (height, width), got {size!r}")
        hw = (values[0], values[1])
    if min(hw) <= 0 or hw[0] % 32 or hw[1] % 32:
        raise ValueError(f"YOLOX input_size must be positive multiples of 32 (e.g. 320, 416, 640), got {size!r}")
    return hw


def letterbox(image: np.ndarray, input_size: tuple[int, int], pad_value: float = PAD_VALUE) -> tuple[np.ndarray, float]:
    """YOLOX's input: the RGB image resized by r = min(H / h, W / w) at the top-left, padded, as BGR [1, 3, H, W].

    Returns the float32 tensor (raw 0-255, no normalisation, as the export expects) and r; a pixel (x, y)
    of the input tensor is (x / r, y / r) in the image. Sizes are truncated as YOLOX's own preprocessing does.
    """
    h, w = image.shape[:2]
    out_h, out_w = input_size
    r = min(out_h / h, out_w / w)
    # the tiny epsilon keeps e.g. 480 * (416 / 480) from truncating to 415
    new_h = min(out_h, max(1, int(h * r + 1e-6)))
    new_w = min(out_w, max(1, int(w * r + 1e-6)))
    resized = image if (new_h, new_w) == (h, w) else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    blob = np.full((1, 3, out_h, out_w), pad_value, dtype=np.float32)
    blob[0, :, :new_h, :new_w] = resized[:, :, ::-1].transpose(2, 0, 1)  # RGB -> BGR planes
    return blob, r


@functools.lru_cache(maxsize=16)
def yolox_grid(height: int, width: int, strides: tuple[int, ...] = YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """The cell offsets [N, 2] (x, y) and strides [N, 1] of YOLOX's output rows for an input of height x width.

    Levels in ``strides`` order, cells row-major within a level (x fastest), as the head flattens them.
    Cached per size; the arrays are read-only.
    """
    grids, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((xs.size, 1), s))
    grid = np.concatenate(grids).astype(np.float32)
    stride = np.concatenate(steps).astype(np.float32)
    grid.setflags(write=False)
    stride.setflags(write=False)
    return grid, stride


def yolox_rows(input_size: int | Sequence[int], strides: tuple[int, ...] = YOLOX_STRIDES) -> int:
    """How many rows YOLOX outputs at this input size (3,549 at 416; 2,100 at 320; 8,400 at 640)."""
    h, w = parse_input_size(input_size)
    return sum((h // s) * (w // s) for s in strides)


def decode_yolox(
    output: np.ndarray,
    input_size: tuple[int, int],
    ratio: float,
    image_shape: tuple[int, int],
    score_threshold: float = 0.3,
    nms_threshold: float = 0.45,
    class_id: int = PERSON_CLASS,
) -> PersonBoxes:
    """Boxes of class ``class_id`` in the original image from a YOLOX output [1, N, 85] (or [N, 85]).

    score = objectness x class probability; rows below ``score_threshold`` are dropped before any box
    arithmetic, the rest decoded on the grid, NMS'd at ``nms_threshold``, divided by the letterbox ``ratio``
    and clipped to the image (``image_shape`` = (height, width)); boxes with nothing left inside are dropped.
    """
    out = np.asarray(output)
    if out.ndim == 3:
        out = out[0]
    grid, stride = yolox_grid(*input_size)
    if out.ndim != 2 or out.shape[0] != grid.shape[0] or out.shape[1] < 5 + class_id + 1:
        raise ValueError(f"YOLOX output has shape {np.asarray(output).shape}; expected [1, {grid.shape[0]}, "
                         f"{YOLOX_COLUMNS}] for input {input_size[0]}x{input_size[1]}")
    scores = out[:, 4] * out[:, 5 + class_id]
    rows = np.flatnonzero(scores >= score_threshold)
    if rows.size == 0:
        return PersonBoxes.empty()
    o = out[rows, :4].astype(np.float32)
    centre = (o[:, :2] + grid[rows]) * stride[rows]
    size = np.exp(o[:, 2:4]) * stride[rows]
    xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / np.float32(ratio)
    kept = nms(xyxy, scores[rows], nms_threshold)
    xyxy = xyxy[kept]
    height, width = image_shape
    xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0, width)
    xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0, height)
    inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return PersonBoxes.from_xyxy(xyxy[inside], scores[rows][kept][inside])


def _dims(value_info: Any) -> list[int | str | None]:
    """The dims of an ONNX tensor type: an int when fixed, the symbol's name when symbolic, None when unknown."""
    dims: list[int | str | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


@dataclass(frozen=True)
class YoloxModelInfo:
    """What :func:`load_yolox_model` found: the names, the file's own input size (None if symbolic), the rewrite."""

    input_name: str
    output_name: str
    native_input_size: tuple[int, int] | None
    made_symbolic: bool


def load_yolox_model(path: str | Path, input_size: tuple[int, int]) -> tuple[bytes, YoloxModelInfo]:
    """The serialized graph to give ONNX Runtime for ``input_size``, after checking the file is YOLOX-shaped.

    A file whose input is fixed at another size gets its input's spatial dims and its output's row dim
    rewritten as symbolic (and its stale intermediate shapes dropped); its convolutions, reshapes and
    resizes do not depend on the size. Errors are :class:`DetectorModelError` (``FileNotFoundError`` for a
    missing file), one line naming the file.
    """
    import onnx

    path = Path(path)
    expected = "a YOLOX ONNX file such as yolox_nano.onnx"
    if not path.exists():
        raise FileNotFoundError(f"detector model file not found: {path} (expected {expected})")
    if not path.is_file():
        raise DetectorModelError(f"detector model path is not a file: {path} (expected {expected})")
    data = path.read_bytes()
    if not data:
        raise DetectorModelError(f"detector model file is empty: {path} (expected {expected})")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise DetectorModelError(f"{path}: not an ONNX file, or corrupt or truncated ({len(data):,} bytes; expected "
                                 f"{expected}): {type(err).__name__}: {_first_line(err)}") from None
    graph = model.graph
    if not graph.node:
        raise DetectorModelError(f"{path}: not an ONNX model (no graph found in {len(data):,} bytes; "
                                 f"expected {expected})")
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    shape_hint = "expected one float32 image input [1, 3, H, W] and one output [1, N, 85]"
    if len(inputs) != 1 or len(graph.output) != 1:
        raise DetectorModelError(f"{path}: not a YOLOX detector: it has {len(inputs)} inputs and "
                                 f"{len(graph.output)} outputs; {shape_hint}")
    inp, out = inputs[0], graph.output[0]
    in_dims, out_dims = _dims(inp), _dims(out)
    float_type = onnx.TensorProto.FLOAT
    if (inp.type.tensor_type.elem_type != float_type or len(in_dims) != 4
            or isinstance(in_dims[1], int) and in_dims[1] != 3):
        raise DetectorModelError(f"{path}: not a YOLOX detector: its input {inp.name!r} is "
                                 f"{_describe(inp, in_dims)}; {shape_hint}")
    if len(out_dims) != 3 or isinstance(out_dims[2], int) and out_dims[2] != YOLOX_COLUMNS:
        raise DetectorModelError(f"{path}: not a YOLOX detector: its output {out.name!r} is "
                                 f"{_describe(out, out_dims)}; {shape_hint}")
    native = (in_dims[2], in_dims[3])
    native_size = native if all(isinstance(v, int) for v in native) else None
    made_symbolic = False
    if native_size is not None and native_size != tuple(input_size):
        in_shape = inp.type.tensor_type.shape.dim
        in_shape[2].dim_param = "height"
        in_shape[3].dim_param = "width"
        out.type.tensor_type.shape.dim[1].dim_param = "rows"
        del graph.value_info[:]  # the exporter's fixed intermediate shapes would contradict the new size
        data = model.SerializeToString()
        made_symbolic = True
    info = YoloxModelInfo(inp.name, out.name, native_size, made_symbolic)  # type: ignore[arg-type]
    return data, info


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _describe(value_info: Any, dims: list[int | str | None]) -> str:
    import onnx

    elem = onnx.TensorProto.DataType.Name(value_info.type.tensor_type.elem_type).lower()
    return f"{elem} [{', '.join('?' if d is None else str(d) for d in dims)}]"


class YoloxDetector:
    """People in an RGB image from a YOLOX ONNX file (COCO-80, class 0 = person) on ONNX Runtime.

    ``input_size``: the letterbox side (an int, or (height, width)), any multiple of 32; the official
    YOLOX-Nano file is 416 and other sizes run after a symbolic rewrite of its dims (320 is faster, 640 finds
    smaller people in large photos). ``threads``: intra-op threads (default: the usable cores).
    ``spinning``: ONNX Runtime's busy-waiting thread pool; off by default because when another process keeps
    a core busy a spinning pool fights it for the core and gets much slower (see benchmarks/results/detector.md).
    ``device``: ``cpu``, or ``cuda`` where onnxruntime has the CUDA provider.

    The file is checked and one zero image run when loading, so a wrong file fails here, not on the first frame.
    """

    def __init__(
        self,
        path: str | Path,
        input_size: int | Sequence[int] = 416,
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        threads: int | None = None,
        spinning: bool = False,
        device: str = "cpu",
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in [0, 1], got {nms_threshold}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.path = Path(path)
        self.input_size = parse_input_size(input_size)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.threads = int(threads) if threads is not None else usable_cores()
        self.spinning = bool(spinning)
        data, self.model_info = load_yolox_model(self.path, self.input_size)

        try:
            self.session = create_session(data, self.threads, "all", device, self.spinning, label=str(self.path))
        except ValueError as err:
            raise DetectorModelError(f"{self.path}: ONNX Runtime cannot load it (corrupt, truncated or not a "
                                     f"YOLOX file): {_first_line(err).split(': ', 1)[-1]}") from None
        self._input_name = self.model_info.input_name
        self._check_output_rows()

    def _check_output_rows(self) -> None:
        """Run a grey image once: the row count must match strides 8/16/32 at this size (also a warm-up)."""
        h, w = self.input_size
        rows = yolox_rows(self.input_size)
        size_note = "" if not self.model_info.made_symbolic else (
            f" (the file's own input is {self.model_info.native_input_size[0]}x"  # type: ignore[index]
            f"{self.model_info.native_input_size[1]})")  # type: ignore[index]
        try:
            out = self.run(np.full((1, 3, h, w), PAD_VALUE, dtype=np.float32))
        except Exception as err:
            raise DetectorModelError(f"{self.path}: the graph does not run at input {h}x{w}{size_note}: "
                                     f"{_first_line(err)}") from None
        if out.shape != (1, rows, YOLOX_COLUMNS):
            raise DetectorModelError(f"{self.path}: not a YOLOX detector for input {h}x{w}{size_note}: output shape "
                                     f"{list(out.shape)}, expected [1, {rows}, {YOLOX_COLUMNS}] (strides 8/16/32)")

    @property
    def output_rows(self) -> int:
        """Rows of the raw output at this input size (2,100 / 3,549 / 5,376 / 8,400 at 320 / 416 / 512 / 640)."""
        return yolox_rows(self.input_size)

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The letterboxed BGR tensor [1, 3, H, W] and the resize ratio, for an RGB uint8 image."""
        return letterbox(check_rgb_image(image, "YoloxDetector"), self.input_size)

    def run(self, blob: np.ndarray) -> np.ndarray:
        """The raw YOLOX output [1, N, 85] for a preprocessed tensor."""
        return self.session.run(None, {self._input_name: blob})[0]

    def postprocess(self, output: np.ndarray, ratio: float, image_shape: tuple[int, int]) -> PersonBoxes:
        """Person boxes in the original image (``image_shape`` = (height, width)) from the raw output."""
        return decode_yolox(output, self.input_size, ratio, image_shape, self.score_threshold, self.nms_threshold)

    def __call__(self, image: np.ndarray) -> PersonBoxes:
        blob, ratio = self.preprocess(image)
        return self.postprocess(self.run(blob), ratio, image.shape[:2])

    def __repr__(self) -> str:
        h, w = self.input_size
        return (f"YoloxDetector({str(self.path)!r}, input_size=({h}, {w}), score_threshold={self.score_threshold}, "
                f"nms_threshold={self.nms_threshold}, threads={self.threads}, spinning={self.spinning})")


WHOLE_IMAGE_HINT = ("or take the whole image as one person: --detector none (PosePredictor(detector=None)); or give "
                    "boxes: --detections FILE")


def default_detector(
    path: str | Path | None = None,
    input_size: int | Sequence[int] = 416,
    score_threshold: float = 0.3,
    nms_threshold: float = 0.45,
    threads: int | None = None,
    offline: bool | None = None,
) -> YoloxDetector:
    """YOLOX-Nano, tpose's person detector: ``path``, else ``$TPOSE_DETECTOR``, ``$TPOSE_WEIGHTS_DIR`` or the
    torch hub cache, else downloaded once from the official release (size and SHA-256 checked). Offline, it
    fails at once with the URL, the exact cache path, the variable that points tpose at a local copy and how
    to go without a detector."""
    file = resolve_file(YOLOX_NANO, path, offline=offline, extra_help=[f"  {WHOLE_IMAGE_HINT}."])
    return YoloxDetector(file, input_size, score_threshold, nms_threshold, threads)
