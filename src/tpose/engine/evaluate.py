"""The evaluation loop: model -> (flip-averaged) heatmaps -> image keypoints -> PCK / COCO AP.

Boxes decide the numbers (GT boxes give COCO AP several points above detector boxes), so every
report carries which ones were used, and its summary says so in words.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tpose.codecs import PIXEL_STD, HeatmapCodec
from tpose.data.keypoint_sets import KeypointSet, get_keypoint_set
from tpose.data.records import VISIBLE
from tpose.utils.modes import eval_mode

from .coco_eval import coco_keypoint_eval, write_coco_results
from .metrics import head_segment_length, joint_box_size, oks_nms, pck, rescore
from .options import EvalSettings

METRICS = ("pck", "pckh", "coco")
BOX_LABELS = {"gt": "GT boxes", "detector": "detector boxes"}
_BATCH_KEYS = ("image", "center", "scale", "keypoints", "box_score", "image_id", "index")


@dataclass
class EvalReport:
    """What one evaluation measured, and how (boxes, flip test, decoding), plus the raw predictions.

    ``predictions`` holds arrays over the N evaluated persons: ``keypoints`` [N, K, 3] (x, y, score in
    original image coordinates, in ``keypoint_names`` order, i.e. the model's), ``score`` [N] (box score
    x mean confident keypoint score), ``image_id``, ``index`` (position in the data set), ``box``,
    ``box_score``, ``center``, ``scale``, and ``nms_keep`` [N] bool when COCO AP was computed.
    """

    metrics: dict[str, float]
    num_persons: int
    num_images: int
    boxes: str
    flip_test: bool
    decode: str
    keypoint_names: tuple[str, ...]
    predictions: dict[str, np.ndarray] = field(repr=False)
    per_joint_pck: dict[str, float] | None = None
    pck_threshold: float | None = None
    results_path: Path | None = None

    @property
    def boxes_label(self) -> str:
        return BOX_LABELS.get(self.boxes, f"{self.boxes} boxes")

    def summary(self) -> str:
        """A few human-readable lines; always names the boxes used."""
        decoding = "DARK" if self.decode == "dark" else self.decode
        lines = [
            f"{self.num_persons} persons in {self.num_images} images, {self.boxes_label}, "
            f"flip test {'on' if self.flip_test else 'off'}, {decoding} decoding"
        ]
        for name, value in self.metrics.items():
            if not name.startswith(("AP", "AR")):
                joints = f" over {len(self.per_joint_pck)} joints" if self.per_joint_pck else ""
                lines.append(f"{name} = {value:.4f}{joints}")
        if self.per_joint_pck:
            cells = [f"{n} {v:.3f}" if np.isfinite(v) else f"{n} -" for n, v in self.per_joint_pck.items()]
            lines.extend("  " + "  ".join(cells[i : i + 4]) for i in range(0, len(cells), 4))
        coco = [(n, v) for n, v in self.metrics.items() if n.startswith(("AP", "AR"))]
        if coco:
            # pycocotools reports -1 for an area range without ground truth
            cells = [f"{n} {v:.4f}" if v >= 0 else f"{n} n/a" for n, v in coco]
            lines.append(f"COCO keypoints ({self.boxes_label}): " + "  ".join(cells))
        if self.results_path is not None:
            lines.append(f"results: {self.results_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings and metrics (no predictions; see ``save_predictions``)."""
        return {
            "metrics": dict(self.metrics),
            "per_joint_pck": self.per_joint_pck,
            "pck_threshold": self.pck_threshold,
            "num_persons": self.num_persons,
            "num_images": self.num_images,
            "boxes": self.boxes_label,
            "flip_test": self.flip_test,
            "decode": self.decode,
            "keypoint_names": list(self.keypoint_names),
            "results_path": None if self.results_path is None else str(self.results_path),
        }

    def save_predictions(self, path: str | Path) -> Path:
        """All predictions as a compressed ``.npz`` (with the keypoint names and the settings as JSON)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **self.predictions, info=np.array(json.dumps(self.to_dict())))
        return out


def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    keypoint_set: KeypointSet | str,
    settings: EvalSettings | None = None,
    *,
    data_keypoint_set: KeypointSet | str | None = None,
    device: str | torch.device = "cpu",
    boxes: Literal["gt", "detector"] = "gt",
    metrics: Sequence[str] = ("pck",),
    coco_gt: Any = None,
    coco_image_ids: Sequence[int] | Literal["seen", "all"] = "seen",
    results_path: str | Path | None = None,
    progress: bool = True,
) -> EvalReport:
    """Run ``model`` over ``loader`` (batches of top-down samples) and measure its keypoints.

    ``keypoint_set`` is the model's; ``data_keypoint_set`` the data's (default: the same). Joints are
    matched by name, so e.g. an LSP-14 model scores on COCO data over the joints both share.
    ``settings`` (see :class:`EvalSettings`): flip test, decoding, precision, PCK threshold and joints.
    ``metrics``: ``"pck"`` (PCK@``settings.pck_threshold``, normalised by the larger side of the box of each
    person's visible joints: LSPET's convention), ``"pckh"`` (PCKh@0.5 with the neck/head-top segment)
    and ``"coco"`` (pycocotools AP/AR against ``coco_gt``, after per-person rescoring and per-image
    OKS-NMS; needs every data keypoint from the model). ``settings.joint_subset`` limits PCK to those names
    (e.g. ``LIMB_JOINTS``). ``boxes`` says where the crops came from and is reported with the numbers;
    PCK needs GT boxes (one annotated person per crop). ``coco_image_ids`` scores only the images seen
    in ``loader`` ("seen", for subsets), every ground-truth image ("all"), or the ids given.
    ``results_path`` also writes the COCO results JSON there.
    """
    settings = settings or EvalSettings()
    model_set = get_keypoint_set(keypoint_set)
    data_set = get_keypoint_set(data_keypoint_set) if data_keypoint_set is not None else model_set
    wanted = tuple(dict.fromkeys(m.lower() for m in metrics))
    unknown = set(wanted) - set(METRICS)
    if unknown or not wanted:
        raise ValueError(f"unknown metrics {sorted(unknown) or list(metrics)}: choose from {METRICS}")
    if boxes not in BOX_LABELS:
        raise ValueError(f"boxes must be 'gt' or 'detector', got {boxes!r}")
    if boxes == "detector" and {"pck", "pckh"} & set(wanted):
        raise ValueError("PCK needs one annotated person per crop, i.e. GT boxes; with detector boxes use ('coco',)")
    if "coco" in wanted:
        if coco_gt is None:
            raise ValueError("metrics 'coco' needs coco_gt (the COCO keypoint annotation file)")
        missing = [n for n in data_set.names if n not in model_set.names]
        if missing:
            raise ValueError(f"COCO AP needs a prediction for every data keypoint; the model has no {missing}")
    pck_pairs = _joint_pairs(model_set, data_set, settings.joint_subset) if {"pck", "pckh"} & set(wanted) else []

    raw = _run_model(model, loader, model_set, settings, device, progress)
    n = raw["keypoints"].shape[0]
    if raw["gt_keypoints"].shape[1:] != (data_set.num_keypoints, 3):
        raise ValueError(
            f"the data's keypoints have shape {raw['gt_keypoints'].shape[1:]} but data keypoint set "
            f"{data_set.name!r} has {data_set.num_keypoints} keypoints"
        )
    predictions = {
        "keypoints": raw["keypoints"],
        "score": rescore(raw["keypoints"][..., 2], raw["box_score"], settings.rescore_threshold),
        "image_id": raw["image_id"],
        "index": raw["index"],
        "box": raw["box"],
        "box_score": raw["box_score"],
        "center": raw["center"],
        "scale": raw["scale"],
    }
    results: dict[str, float] = {}
    per_joint: dict[str, float] | None = None
    gt = raw["gt_keypoints"]
    if n and {"pck", "pckh"} & set(wanted):
        m_idx = [m for m, _, _ in pck_pairs]
        d_idx = [d for _, d, _ in pck_pairs]
        pred_xy = raw["keypoints"][:, m_idx, :2]
        visible = gt[..., 2] >= VISIBLE  # PCK counts visible joints only (occluded ones are v = 1)
        gt_xy, gt_vis = gt[:, d_idx, :2], visible[:, d_idx]
        if "pck" in wanted:
            norm = joint_box_size(gt[..., :2], visible)  # the box of all the person's visible joints
            threshold = settings.pck_threshold
            joint_pck, results[f"PCK@{threshold:g}"] = pck(pred_xy, gt_xy, gt_vis, norm, threshold)
            per_joint = {name: float(v) for (_, _, name), v in zip(pck_pairs, joint_pck, strict=True)}
        if "pckh" in wanted:
            head = head_segment_length(gt[..., :2], visible, data_set)
            _, results["PCKh@0.5"] = pck(pred_xy, gt_xy, gt_vis, head, 0.5)
    saved: Path | None = None
    if "coco" in wanted:
        keep = _per_image_oks_nms(predictions, model_set, data_set, settings.nms_threshold)
        predictions["nms_keep"] = keep
        persons = _coco_persons(predictions, model_set, data_set, keep)
        if results_path is not None:
            write_coco_results(persons, results_path)
            saved = Path(results_path)
        if coco_image_ids == "seen":
            image_ids: Sequence[int] | None = sorted({int(i) for i in raw["image_id"]})
        elif coco_image_ids == "all":
            image_ids = None
        else:
            image_ids = [int(i) for i in coco_image_ids]
        results.update(coco_keypoint_eval(coco_gt, persons, sigmas=data_set.sigmas, image_ids=image_ids))
    return EvalReport(
        metrics=results,
        num_persons=n,
        num_images=len(np.unique(raw["image_id"])),
        boxes=boxes,
        flip_test=bool(settings.flip_test),
        decode=settings.decode,
        keypoint_names=model_set.names,
        predictions=predictions,
        per_joint_pck=per_joint,
        pck_threshold=settings.pck_threshold if "pck" in wanted else None,
        results_path=saved,
    )


def _joint_pairs(
    model_set: KeypointSet, data_set: KeypointSet, subset: Sequence[str] | None
) -> list[tuple[int, int, str]]:
    """(model index, data index, name) for every joint scored, by name."""
    shared = [n for n in model_set.names if n in data_set.names]
    if subset is not None:
        missing = [n for n in subset if n not in shared]
        if missing:
            raise ValueError(
                f"joint_subset names {missing} are not in both the model's keypoint set {model_set.name!r} "
                f"and the data's {data_set.name!r}"
            )
        shared = list(dict.fromkeys(subset))
    if not shared:
        raise ValueError(f"keypoint sets {model_set.name!r} and {data_set.name!r} share no keypoint names")
    return [(model_set.index(n), data_set.index(n), n) for n in shared]


def _run_model(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    model_set: KeypointSet,
    settings: EvalSettings,
    device: str | torch.device,
    progress: bool,
    codec: HeatmapCodec | None = None,
) -> dict[str, np.ndarray]:
    """Heatmaps for every batch, decoded straight away (so memory holds keypoints, not heatmaps).

    ``codec`` decodes (default: one for the batches' input size with the standard stride)."""
    dev = torch.device(device)
    flip_index = model_set.flip_index()
    model.to(dev)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("keypoints", "gt_keypoints", "image_id", "index", "box", "box_score", "center", "scale")
    }
    amp_dtype = settings.amp_dtype
    autocast = (
        torch.autocast(device_type=dev.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    )
    with eval_mode(model), torch.inference_mode(), autocast:
        for step, batch in enumerate(tqdm(loader, desc="evaluate", disable=not progress, leave=False)):
            missing = [k for k in _BATCH_KEYS if k not in batch]
            if missing:
                raise KeyError(f"evaluation batch {step} lacks {missing}; expected TopDownDataset samples")
            images = torch.as_tensor(batch["image"]).to(dev, non_blocking=True)
            heatmaps = _heatmaps(model(images)).float()
            if heatmaps.dim() != 4 or heatmaps.shape[1] != model_set.num_keypoints:
                raise ValueError(
                    f"the model returned heatmaps of shape {tuple(heatmaps.shape)}; keypoint set "
                    f"{model_set.name!r} needs [B, {model_set.num_keypoints}, H, W]"
                )
            if settings.flip_test:
                mirrored = _heatmaps(model(images.flip(3))).float()
                heatmaps = (heatmaps + HeatmapCodec.flip_back(mirrored, flip_index)) * 0.5
            if codec is None:
                codec = HeatmapCodec(tuple(images.shape[-2:]))
            center = _np(batch["center"], np.float32)
            scale = _np(batch["scale"], np.float32)
            rotation = _np(batch["rotation"], np.float64) if "rotation" in batch else None
            xy, scores = codec.decode_to_image(heatmaps.cpu().numpy(), center, scale, settings.decode,
                                               rotation, settings.blur_kernel)
            parts["keypoints"].append(np.concatenate([xy, scores[..., None]], axis=-1))
            parts["gt_keypoints"].append(_np(batch["keypoints"], np.float32))
            parts["image_id"].append(_np(batch["image_id"], np.int64).reshape(-1))
            parts["index"].append(_np(batch["index"], np.int64).reshape(-1))
            box = batch.get("box")
            parts["box"].append(_np(box, np.float32) if box is not None else np.zeros((len(center), 4), np.float32))
            parts["box_score"].append(_np(batch["box_score"], np.float32).reshape(-1))
            parts["center"].append(center)
            parts["scale"].append(scale)
    if not parts["keypoints"]:
        raise ValueError("no person to evaluate: the data gave no sample (did every annotated person fail the "
                         "data set's filters?)")
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def _heatmaps(output: Any) -> torch.Tensor:
    """The heatmaps of a model's output (a tensor, or the first item of a tuple such as (heatmaps, attention))."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _np(value: Any, dtype: type) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(dtype, copy=False)
    return np.asarray(value, dtype=dtype)


def _per_image_oks_nms(
    predictions: Mapping[str, np.ndarray], model_set: KeypointSet, data_set: KeypointSet, thresh: float
) -> np.ndarray:
    """[N] bool: the persons that survive OKS-NMS within their image (data keypoints and sigmas)."""
    order = [model_set.index(n) for n in data_set.names]
    kpts = predictions["keypoints"][:, order]
    areas = predictions["scale"][:, 0] * predictions["scale"][:, 1] * PIXEL_STD**2
    keep = np.zeros(len(kpts), dtype=bool)
    image_ids = predictions["image_id"]
    for image_id in np.unique(image_ids):
        members = np.flatnonzero(image_ids == image_id)
        persons = [{"keypoints": kpts[i], "score": predictions["score"][i], "area": areas[i]} for i in members]
        keep[members[oks_nms(persons, thresh, data_set.sigmas)]] = True
    return keep


def _coco_persons(
    predictions: Mapping[str, np.ndarray], model_set: KeypointSet, data_set: KeypointSet, keep: np.ndarray
) -> list[dict[str, Any]]:
    order = [model_set.index(n) for n in data_set.names]
    return [
        {
            "image_id": int(predictions["image_id"][i]),
            "keypoints": predictions["keypoints"][i, order],
            "score": float(predictions["score"][i]),
        }
        for i in np.flatnonzero(keep)
    ]
