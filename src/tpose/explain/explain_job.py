"""``tpose explain``: the explanation figures for the people in one image, written to a folder.

The model comes from ``tpose.load_pose_model`` (a name, tag, weights file or an ONNX export with attention
outputs); the persons from given boxes, a detections file or the whole image. docs/explain.md says how
every figure is computed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..codecs import HEATMAP_STRIDE
from ..data.image_io import read_image
from ..data.keypoint_sets import KeypointSet
from ..factory import load_pose_model
from ..inference.options import DetectorOptions
from ..inference.sources import load_detections
from .attention import (
    DEFAULT_THRESHOLD,
    AttentionResult,
    Crop,
    affected_columns,
    crop_person,
    crop_to_token,
    dependency_rows,
    heatmap_to_token,
    predicted_locations,
    run_attention,
    select_heads,
    select_layers,
    shown_maps,
)
from .figures import map_grid_figure, save_png, short_name
from .gradient import gradient_attention_correlation, gradient_figure
from .html_page import PageView, write_attention_page
from .position_maps import model_position_tables, save_position_figure


def _resolve_boxes(
    box: Any, image: np.ndarray, image_path: Path, min_box_score: float, detector: Any = None
) -> list[tuple[np.ndarray, float]]:
    """Person boxes (x, y, w, h) with scores: given boxes, a detections JSON's for this file, the detector's,
    or the whole image (``detector`` None)."""
    h, w = image.shape[:2]
    if box is None and detector is not None:
        found = detector(image).above(min_box_score)
        if len(found) == 0:
            raise ValueError(f"{image_path}: the detector found no person; give a box (--box x,y,w,h) or take the "
                             "whole image (--whole-image)")
        return [(b, float(s)) for b, s in zip(found.boxes, found.scores, strict=True)]
    if box is None:
        return [(np.array([0.0, 0.0, w, h], dtype=np.float32), 1.0)]
    if isinstance(box, (str, Path)):
        dets = load_detections(box, min_score=min_box_score)
        found = dets.for_image(image_path.name)
        if found is None:
            raise ValueError(f"{box}: cannot tell the COCO image id of {image_path.name} (its name is not numeric)")
        boxes, scores = found
        if len(boxes) == 0:
            raise ValueError(f"{box}: no person box with score >= {min_box_score} for image {image_path.name}")
        return [(b, float(s)) for b, s in zip(boxes, scores, strict=True)]
    arr = np.asarray(box, dtype=np.float32)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"box must be (x, y, w, h), a list of them, or a detections JSON path; got shape {arr.shape}")
    return [(b, 1.0) for b in arr]


def _save_maps(
    stem: Path,
    crop: Crop,
    token_maps: np.ndarray,
    stars: np.ndarray,
    pose_points: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    kset: KeypointSet,
    threshold: float | None,
    title: str,
    tile_scale: float,
) -> list[Path]:
    """A figure and its two arrays: ``<stem>.npy`` (the maps coloured, float16 to halve their size; the figure is
    coloured from exactly these values) and ``<stem>_tokens.npy`` (the raw attention grids, float32)."""
    shown = shown_maps(token_maps, crop.image.shape[:2], threshold).astype(np.float16)
    figure = map_grid_figure(
        crop.image, shown, stars, pose_points, row_labels, col_labels, kset.skeleton, kset.colors, title, tile_scale
    )
    png = save_png(stem.with_suffix(".png"), figure)
    np.save(stem.with_suffix(".npy"), shown)
    tokens = stem.with_name(stem.name + "_tokens.npy")
    np.save(tokens, token_maps.astype(np.float32))
    return [png, stem.with_suffix(".npy"), tokens]


@dataclass(frozen=True)
class ExplainOptions:
    """What ``tpose explain`` draws, for whom, and how.

    ``box``: (x, y, w, h) or a list of them; or a COCO detection-results JSON whose person boxes for this
    file (matched by its numeric name, scores >= ``min_box_score``) are used; None: the persons ``detector``
    finds (see :class:`~tpose.inference.options.DetectorOptions`; ``DetectorOptions(None)``: the whole image).
    ``layers``: "last", "all" or indices; ``heads``: "mean", "all" (mean, then each head, one figure each) or
    one index; ``threshold`` hides attention below it (None or 0: show all). ``affected``: image points whose
    affected areas (attention columns) to draw. ``html``: path of the interactive page (all layers; heads as
    chosen). ``gradient``: also run the gradient analysis of supplementary D. ``positions``: the
    position-embedding similarity figure.
    """

    box: Sequence[float] | Sequence[Sequence[float]] | str | Path | None = None
    min_box_score: float = 0.0
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    layers: str | int | Sequence[int] = "last"
    heads: str | int = "mean"
    threshold: float | None = DEFAULT_THRESHOLD
    affected: Sequence[tuple[float, float]] | None = None
    html: str | Path | None = None
    gradient: bool = False
    positions: bool = True
    tile_scale: float = 1.0
    device: str = "cpu"
    keypoint_set: str | Path | KeypointSet | None = None

    def __post_init__(self) -> None:
        if self.affected is not None:
            pts = np.asarray(self.affected, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
                raise ValueError(f"affected must be a list of (x, y) image points, got {self.affected!r}")


def run_explain(
    input_image: str | Path,
    output_dir: str | Path,
    model: str | Path | nn.Module | None = None,
    weights: str | Path | bool | None = None,
    options: ExplainOptions | None = None,
) -> dict[str, Any]:
    """Explain the predictions for the people in one image; returns (and writes as summary.json) what was made.

    ``options`` (see :class:`ExplainOptions`) says whom (boxes, a detections file, the detector or the whole
    image) and what to draw. With several people, each gets a ``person_NN`` folder.
    """
    options = options or ExplainOptions()
    image_path = Path(input_image)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_pose_model(model, weights, device=options.device, keypoint_set=options.keypoint_set)
    net, model_name, kset = loaded.model, loaded.name, loaded.keypoint_set
    if not hasattr(net, "global_encoder") and not getattr(net, "attention_names", None):
        raise ValueError(f"{loaded.weights}: this ONNX export has no attention outputs, which explain needs: export "
                         "it with `tpose export --attention`, or explain the PyTorch weights")
    image = read_image(image_path)
    # without boxes, the people are found as tpose predict finds them
    finder = options.detector.build() if options.box is None else None
    boxes = _resolve_boxes(options.box, image, image_path, options.min_box_score, finder)
    input_hw = loaded.input_size
    summary: dict[str, Any] = {
        "image": str(image_path),
        "model": model_name,
        "weights": loaded.weights,
        "input_size": list(input_hw),
        "threshold": options.threshold,
        "layers": options.layers if isinstance(options.layers, str) else np.atleast_1d(options.layers).tolist(),
        "heads": options.heads,
        "persons": [],
        "files": [],
    }
    views: list[PageView] = []
    for n, (person_box, box_score) in enumerate(boxes):
        folder = out_dir if len(boxes) == 1 else out_dir / f"person_{n:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        crop = crop_person(image, person_box, input_hw)
        person, att, crop_points = _explain_person(net, crop, folder, kset, model_name, options)
        person = {"box": [float(v) for v in person_box], "box_score": box_score, **person}
        summary["persons"].append(person)
        summary["files"].extend(person["files"])
        if options.html is not None:
            att_sel, labels = select_heads(att.attention, options.heads)
            views.append(PageView(
                label=f"person {n} box {[round(float(v), 1) for v in person_box]}",
                image=crop.image,
                attention=att_sel,
                grid_hw=att.grid_hw,
                head_labels=labels,
                keypoints=crop_points,
                scores=np.asarray([s for *_, s in person["keypoints"]], dtype=np.float32),
                names=kset.names,
                skeleton=kset.skeleton,
                colors=kset.colors,
            ))
    if options.positions:
        tables = model_position_tables(net)
        if tables:
            files = save_position_figure(out_dir / "position_embedding.png", tables, tuple(net.position.grid_hw))
            summary["files"].extend(str(f) for f in files)
            summary["position_embedding"] = [str(f) for f in files]
    if options.html is not None:
        page = write_attention_page(options.html, views, options.threshold or 0.0,
                                    title=f"TransPose attention: {image_path.name}")
        summary["html"] = str(page)
        summary["files"].append(str(page))
    summary_path = out_dir / "summary.json"
    summary["files"].append(str(summary_path))
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def _explain_person(
    net: nn.Module,
    crop: Crop,
    folder: Path,
    kset: KeypointSet,
    model_name: str,
    options: ExplainOptions,
) -> tuple[dict[str, Any], AttentionResult, np.ndarray]:
    """One person's figures; returns its summary, its attention and its keypoints in crop pixels."""
    layers, threshold, affected, tile_scale = options.layers, options.threshold, options.affected, options.tile_scale
    att = run_attention(net, crop.tensor)
    xy, scores = predicted_locations(att.heatmaps)
    tokens = heatmap_to_token(xy, att.heatmap_hw, att.grid_hw)
    crop_points = xy.astype(np.float64) * HEATMAP_STRIDE
    image_points = crop.crop_to_image(crop_points)
    layer_idx = select_layers(att.num_layers, layers)
    att_sel, head_labels = select_heads(att.attention[layer_idx], options.heads)
    row_labels = [f"layer {i}" + (" (last)" if i == att.num_layers - 1 else "") for i in layer_idx]
    names = [short_name(s) for s in kset.names]
    layer_tag = layers if layers in ("last", "all") else "layers" + "-".join(str(i) for i in layer_idx)
    thr_text = f"threshold {threshold}" if threshold else "no threshold"
    files: list[Path] = []
    for h, label in enumerate(head_labels):
        tag = label.replace(" ", "")
        head_text = f"mean of {att.num_heads} heads" if label == "mean" else label
        rows = dependency_rows(att_sel[:, h], tokens, att.grid_hw)  # [layers, K, gh, gw]
        files += _save_maps(
            folder / f"dependency_{layer_tag}_{tag}", crop, rows, crop_points, crop_points, row_labels, names, kset,
            threshold, f"dependency areas A[i,:] | {model_name} | {head_text} | {thr_text}", tile_scale,
        )
        if affected:
            pts = crop.image_to_crop(np.asarray(affected, dtype=np.float64).reshape(-1, 2))
            cols = affected_columns(att_sel[:, h], crop_to_token(pts, att.input_hw, att.grid_hw), att.grid_hw)
            labels = [f"({x:.0f},{y:.0f})" for x, y in np.asarray(affected, dtype=np.float64).reshape(-1, 2)]
            files += _save_maps(
                folder / f"affected_{layer_tag}_{tag}", crop, cols, pts, crop_points, row_labels, labels, kset,
                threshold, f"affected areas A[:,j] | {model_name} | {head_text} | {thr_text}", tile_scale,
            )
    person: dict[str, Any] = {
        "center": [float(v) for v in crop.center],
        "scale": [float(v) for v in crop.scale],
        "keypoint_names": list(kset.names),
        "keypoints": [[float(x), float(y), float(s)] for (x, y), s in zip(image_points, scores, strict=True)],
        "tokens": [int(t) for t in tokens],
    }
    if options.gradient:
        result = gradient_attention_correlation(net, crop.tensor)
        fig = gradient_figure(crop.image, result, kset.names, crop_points, kset.skeleton, kset.colors, tile_scale)
        files.append(save_png(folder / "gradient.png", fig))
        report = result.to_dict(kset.names)
        (folder / "gradient.json").write_text(json.dumps(report, indent=1))
        np.savez(
            folder / "gradient.npz", attention=result.attention, grad_norm=result.grad_norm,
            grad_sum=result.grad_sum, local=result.local, keypoints=result.keypoints, tokens=result.tokens,
        )
        files += [folder / "gradient.json", folder / "gradient.npz"]
        person["gradient"] = report["mean"]
    person["files"] = [str(f) for f in files]
    return person, att, crop_points
