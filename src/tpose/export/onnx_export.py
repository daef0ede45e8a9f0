"""Export a TransPose to ONNX: fixed input size, dynamic batch, optional attention outputs, checked on export.

Which exporter: with torch 2.13 both work on our models. The TorchScript exporter (``dynamo=False``,
deprecated but present) needs nothing beyond torch and ``onnx``, keeps BatchNorm as its own node, and
matches PyTorch to ~1e-8 on every variant; the torch.export-based one needs the extra ``onnxscript``
package, folds BatchNorm into the convolutions (which on the untrained HRNet variants, whose activations
reach 1e5, shifts heatmaps by ~3e-3), and at opset 23 maps ``scaled_dot_product_attention`` onto the ONNX
``Attention`` operator. So the TorchScript exporter is the default and ``exporter="dynamo"`` is offered.
Both lower SDPA without a mask to MatMul-Softmax-MatMul below opset 23, i.e. ONNX Runtime computes the
[L, L] attention matrix explicitly (as the released models do).

The graph: input ``image`` [batch, 3, H, W] (float32, ImageNet-normalised RGB), output ``heatmaps``
[batch, K, H/4, W/4] and, with attention, ``attention_0`` ... ``attention_{n-1}``: each encoder layer's
map, [batch, heads, L, L] (``attention="heads"``) or averaged over heads [batch, L, L] (``"mean"``).
H and W are fixed at export (the position table is computed for that grid); the batch is free.
The file's metadata (``custom_metadata_map`` in ONNX Runtime) holds ``keypoint_set`` (JSON) and ``tpose``
(JSON: architecture, input size, outputs, exporter), which the predictor reads.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codecs import HeatmapCodec, normalize_batch
from ..data.image_io import read_image
from ..data.keypoint_sets import KeypointSet, default_keypoint_set, get_keypoint_set
from ..factory import load_pose_model
from ..models.checkpoint import variant_name
from ..models.onnx_model import HEATMAPS_NAME, INPUT_NAME, OnnxPoseModel, attention_output_name
from ..utils.modes import eval_mode

MIN_OPSET = 17
DEFAULT_OPSET = 17
ATTENTION_MODES = ("heads", "mean")
EXPORTERS = ("torchscript", "dynamo")
FORMATS = ("onnx",)
# the example batch traced at export: 2 rather than 1, so no exporter specialises the batch to a constant
_EXAMPLE_BATCH = 2


class ExportCheckError(ValueError):
    """The exported graph disagrees with PyTorch beyond the tolerance (the file is kept for inspection)."""


def _attention_mode(attention: bool | str | None) -> str | None:
    """False/None -> no attention outputs; True -> per head; or "heads" / "mean"."""
    if attention is None or attention is False:
        return None
    if attention is True:
        return "heads"
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be False, True or one of {ATTENTION_MODES}, got {attention!r}")
    return str(attention)


class _ExportForward(nn.Module):
    """Pins the call the exporter records: one image batch in, a flat tuple of tensors out."""

    def __init__(self, model: nn.Module, attention: str | None) -> None:
        super().__init__()
        self.model = model
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.attention is None:
            return self.model(x)
        heatmaps, maps = self.model(x, return_attention=True, keep_heads=self.attention == "heads")
        return (heatmaps, *maps)


def _model_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, int]:
    if input_size is not None:
        h, w = (int(v) for v in input_size)
    else:
        config = getattr(model, "config", None)
        if config is None:
            raise ValueError("input_size (H, W) is needed: the model does not record the size it was trained at")
        h, w = (int(v) for v in config.input_size)
    check = getattr(model, "_check_size", None)
    if check is not None:
        check(h, w)  # a clear error for sizes the backbone cannot take
    return h, w


def _num_layers(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("attention outputs need a TransPose model (one with a config)")
    return int(config.num_layers)


def _metadata(
    model: nn.Module,
    size: tuple[int, int],
    keypoint_set: KeypointSet | None,
    attention: str | None,
    opset: int,
    exporter: str,
    extra: dict[str, Any] | None,
) -> dict[str, str]:
    config = getattr(model, "config", None)
    info: dict[str, Any] = {
        "format": "tpose-onnx",
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, *size], "layout": "NCHW RGB, ImageNet-normalised"},
        "input_size": list(size),
        "outputs": [HEATMAPS_NAME],
        "attention": attention,
        "opset": opset,
        "exporter": exporter,
        "torch_version": torch.__version__,
    }
    if config is not None:
        model_dict = config.to_dict()
        model_dict["input_size"] = list(size)  # the graph's grid is the export size's
        info["model"] = model_dict
        info["variant"] = variant_name(config)
        info["backbone_stride"] = int(getattr(model, "backbone_stride", 0)) or None
        if attention is not None:
            info["outputs"] += [attention_output_name(i) for i in range(int(config.num_layers))]
    if extra:
        info.update(extra)
    out = {"tpose": json.dumps(info)}
    if keypoint_set is not None:
        out["keypoint_set"] = json.dumps(keypoint_set.to_dict())
    return out


def _default_keypoint_set(model: nn.Module) -> KeypointSet | None:
    config = getattr(model, "config", None)
    return None if config is None else default_keypoint_set(int(config.num_keypoints))


def _run_exporter(
    wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int, exporter: str, output_names: list[str]
) -> None:
    if exporter == "torchscript":
        axes = {name: {0: "batch"} for name in [INPUT_NAME, *output_names]}
        with warnings.catch_warnings():
            # the input size is meant to be baked in: shape checks and the position grid become constants
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=output_names,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        return
    if importlib.util.find_spec("onnxscript") is None:
        raise ValueError("exporter='dynamo' needs the onnxscript package (pip install onnxscript); "
                         "the default exporter='torchscript' does not")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: Sequence[int] | None = None,
    opset: int = DEFAULT_OPSET,
    attention: bool | str = False,
    exporter: str = "torchscript",
    keypoint_set: str | Path | KeypointSet | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` and validate it with ``onnx.checker`` (full check).

    ``input_size`` (H, W) is fixed in the graph (default: the model's ``config.input_size``); the batch
    is dynamic. ``attention``: False, True/"heads" or "mean" adds every layer's attention as outputs.
    ``keypoint_set`` is recorded in the file (default: COCO-17/LSP-14/MPII-16 by keypoint count).
    """
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be {MIN_OPSET} or newer, got {opset}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    mode = _attention_mode(attention)
    size = _model_size(model, input_size)
    output_names = [HEATMAPS_NAME]
    if mode is not None:
        output_names += [attention_output_name(i) for i in range(_num_layers(model))]
    kset = get_keypoint_set(keypoint_set) if keypoint_set is not None else _default_keypoint_set(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    example = torch.zeros(_EXAMPLE_BATCH, 3, *size, device=device)
    with eval_mode(model), torch.no_grad():
        _run_exporter(_ExportForward(model, mode), example, path, opset, exporter, output_names)
    set_metadata_props(path, _metadata(model, size, kset, mode, opset, exporter, extra_metadata))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def set_metadata_props(path: str | Path, props: dict[str, str]) -> None:
    """Write ``props`` into the ONNX file's metadata (replacing keys of the same name, keeping the others) and
    mark tpose as its producer."""
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "tpose"
    onnx.save(proto, str(path))


# ------------------------------------------------------------------------------------------- checking


@dataclass
class ExportCheck:
    """How far ONNX Runtime's results are from PyTorch's on the same crops."""

    crops: int
    inputs: str
    max_heatmap_diff: float
    max_keypoint_diff_px: float  # DARK-decoded, in heatmap pixels (the decoder's output): what passes or fails
    max_image_keypoint_diff_px: float  # the same points in original-image pixels, for information
    max_score_diff: float
    max_attention_diff: float | None
    tolerance_px: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        att = "" if self.max_attention_diff is None else f", attention {self.max_attention_diff:.2e}"
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"{verdict} on {self.crops} crops ({self.inputs}): max heatmap diff {self.max_heatmap_diff:.2e}{att}; "
            f"keypoints {self.max_keypoint_diff_px:.2e} heatmap px / {self.max_image_keypoint_diff_px:.2e} image px "
            f"(tolerance {self.tolerance_px:g} heatmap px)"
        )


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def shipped_check_images() -> list[Path]:
    """The real photograph(s) tpose ships for checking exports (``tpose/export/check_images``)."""
    folder = resources.files("tpose.export").joinpath("check_images")
    return sorted(Path(str(f)) for f in folder.iterdir() if Path(str(f)).suffix.lower() in _IMAGE_SUFFIXES)


def _image_files(images: str | Path | Sequence[str | Path], limit: int) -> list[Path]:
    """Files as given, folders expanded to their images (sorted), the first ``limit`` in all."""
    entries = [images] if isinstance(images, (str, Path)) else list(images)
    files: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p}: no {'/'.join(_IMAGE_SUFFIXES)} images to check the export on")
            files += found
        else:
            files.append(p)  # a missing or corrupt file is named by read_image
    return files[:limit]


def check_export(
    onnx_path: str | Path,
    model: nn.Module,
    images: str | Path | Sequence[str | Path | np.ndarray] | None = None,
    boxes: Sequence[Sequence[float] | None] | None = None,
    tolerance_px: float = 1e-3,
    max_images: int = 8,
    threads: int | None = None,
) -> ExportCheck:
    """Run the same crops through PyTorch and ONNX Runtime and compare heatmaps and decoded keypoints.

    ``images``: image files, a folder (its first ``max_images``) or RGB arrays; None uses the real
    photograph tpose ships for this check (``shipped_check_images``). ``boxes[i]`` (x, y, w, h) picks the
    person in image i (None: the whole image). Crops are made and decoded (DARK) exactly as the predictor
    does, without flip test. It passes when the decoded keypoints agree within ``tolerance_px`` heatmap
    pixels. In image pixels the difference is larger by the crop's scale (box width / heatmap width:
    ~50x for a 640 px wide box at a 64x48 input). Untrained models make broad, flat heatmaps on which
    DARK's Newton step magnifies float32 rounding (seen: 1e-9 heatmap differences -> up to 1e-4 heatmap
    px); a trained model's peaks do not.
    """
    onnx_model = OnnxPoseModel(onnx_path, threads=threads)
    if images is not None and not isinstance(images, (str, Path)) and len(images) == 0:
        images = None  # an empty list (e.g. a command-line option given no values) means "none given"
    if images is None:
        arrays: list[Any] = [read_image(p) for p in shipped_check_images()]
        inputs = f"{len(arrays)} real image(s) shipped with tpose ({', '.join(f.name for f in shipped_check_images())})"
    elif isinstance(images, (str, Path)) or all(isinstance(i, (str, Path)) for i in images):
        files = _image_files(images, max_images)  # type: ignore[arg-type]
        arrays = [read_image(f) for f in files]
        names = ", ".join(f.name for f in files[:3]) + ("..." if len(files) > 3 else "")
        inputs = f"{len(arrays)} image file(s) given ({names})"
    else:
        arrays = list(images)[:max_images]
        inputs = f"{len(arrays)} image array(s) given"
    codec = HeatmapCodec(onnx_model.input_size)
    patches, centers, scales = [], [], []
    for i, image in enumerate(arrays):
        h, w = image.shape[:2]
        box = (0.0, 0.0, float(w), float(h)) if boxes is None or boxes[i] is None else boxes[i]
        center, scale = codec.box_to_center_scale(box)
        patches.append(codec.crop(image, center, scale))
        centers.append(center)
        scales.append(scale)
    x = normalize_batch(torch.from_numpy(np.stack(patches)))
    param = next(model.parameters())
    with eval_mode(model), torch.inference_mode():
        if onnx_model.attention is not None:
            ref_hm, ref_maps = model(x.to(param.device), return_attention=True,
                                     keep_heads=onnx_model.attention == "heads")
        else:
            ref_hm, ref_maps = model(x.to(param.device)), []
    ref = ref_hm.float().cpu().numpy()
    if onnx_model.attention is not None:
        got_hm, got_maps = onnx_model(x, return_attention=True, keep_heads=onnx_model.attention == "heads")
    else:
        got_hm, got_maps = onnx_model(x), []
    got = got_hm.numpy()
    if got.shape != ref.shape:
        raise ExportCheckError(f"{onnx_path}: ONNX heatmaps have shape {got.shape}, PyTorch's {ref.shape}")
    ref_xy, ref_s = codec.decode(ref)
    got_xy, got_s = codec.decode(got)
    c, s = np.stack(centers), np.stack(scales)
    ref_img = codec.to_image(ref_xy, c, s)
    got_img = codec.to_image(got_xy, c, s)
    att_diff = None
    if ref_maps:
        pairs = zip(ref_maps, got_maps, strict=True)
        att_diff = max(float(np.abs(a.float().cpu().numpy() - b.numpy()).max()) for a, b in pairs)
    kp = float(np.abs(ref_xy - got_xy).max())
    img_kp = float(np.abs(ref_img - got_img).max())
    return ExportCheck(
        crops=len(x),
        inputs=inputs,
        max_heatmap_diff=float(np.abs(ref - got).max()),
        max_keypoint_diff_px=kp,
        max_image_keypoint_diff_px=img_kp,
        max_score_diff=float(np.abs(ref_s - got_s).max()),
        max_attention_diff=att_diff,
        tolerance_px=tolerance_px,
        passed=kp <= tolerance_px,
    )


# ------------------------------------------------------------------------------------------- the job


def _default_output(name: str, size: tuple[int, int], attention: str | None) -> Path:
    """``<name>_<H>x<W>[_attention].onnx`` in the working folder (never inside the installed package)."""
    tail = "" if attention is None else "_attention"
    return Path.cwd() / f"{name}_{size[0]}x{size[1]}{tail}.onnx"


@dataclass(frozen=True)
class ExportOptions:
    """What ``tpose export`` writes and how it checks it.

    ``input_size`` (H, W) is fixed in the graph (default: the model's); ``attention`` also outputs every
    layer's attention maps ("heads" or True: per head, what explain needs; "mean"); ``keypoint_set`` refines
    the weights' own. ``verify`` compares the decoded keypoints of the file with PyTorch's on
    ``verify_images`` (files and/or folders; default: the real photograph tpose ships for it), within
    ``tolerance_px`` heatmap pixels.
    """

    format: str = "onnx"
    input_size: Sequence[int] | None = None
    opset: int = DEFAULT_OPSET
    attention: bool | str = False
    exporter: str = "torchscript"
    keypoint_set: str | Path | KeypointSet | None = None
    verify: bool = True
    verify_images: str | Path | Sequence[str | Path] | None = None
    tolerance_px: float = 1e-3

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")


def run_export(
    model: str | Path | nn.Module | None = None,
    output: str | Path | None = None,
    weights: str | Path | bool | None = None,
    options: ExportOptions | None = None,
) -> dict[str, Any]:
    """Everything ``tpose export`` does: load the model, export it, check it against PyTorch.

    ``model``/``weights`` are as for ``tpose.load_pose_model`` (both None: the shipped weights). ``output``
    defaults to ``<weights stem>_<H>x<W>.onnx`` in the working folder. The check (see :class:`ExportOptions`)
    raises :class:`ExportCheckError` when decoded keypoints differ by more than ``options.tolerance_px``
    heatmap pixels (see :func:`check_export`). The summary's ``check`` holds every measured difference and
    names the images used.
    """
    options = options or ExportOptions()
    input_size, opset, exporter = options.input_size, options.opset, options.exporter
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_pose_model(model, weights, backend="torch", input_size=tuple(input_size) if input_size else None,
                                 keypoint_set=options.keypoint_set)
    random_weights = loaded.weights is None
    if random_weights:
        warnings.warn(f"no weights given: exporting {loaded.name} with random initial weights", stacklevel=2)
    for w in caught:
        if "random initial weights" not in str(w.message):
            warnings.warn(w.message, w.category, stacklevel=2)
    net = loaded.model
    mode = _attention_mode(options.attention)
    size = _model_size(net, loaded.input_size)
    stem = Path(loaded.weights).stem if loaded.weights else loaded.name
    out = Path(output) if output is not None else _default_output(stem, size, mode)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"the output of an ONNX export must end in .onnx, got {out}")
    extra = {"source": loaded.name, "checkpoint": loaded.weights,
             "variant": loaded.metadata.get("variant") or variant_name(net.config)}
    export_onnx(net, out, size, opset, mode or False, exporter, loaded.keypoint_set, extra)
    summary: dict[str, Any] = {
        "output": str(out),
        "bytes": out.stat().st_size,
        "format": options.format,
        "opset": opset,
        "exporter": exporter,
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, *size]},
        "outputs": [HEATMAPS_NAME]
        + ([attention_output_name(i) for i in range(_num_layers(net))] if mode is not None else []),
        "attention": mode,
        "weights": loaded.weights,
        "check": None,
    }
    if options.verify:
        check = check_export(out, net, options.verify_images, tolerance_px=options.tolerance_px)
        summary["check"] = check.to_dict()
        if not check.passed:
            raise ExportCheckError(f"{out}: the exported graph disagrees with PyTorch: {check.summary()}")
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary
