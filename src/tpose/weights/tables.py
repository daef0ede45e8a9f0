"""The weights table of ``tpose weights`` / ``tpose info``: status on this machine, accuracy with its boxes,
where each file comes from and under which licence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .catalog import DETECTOR_BOXES, DETECTOR_NOTE, Accuracy, WeightsEntry, list_weights, tags
from .files import cache_path, entry_metadata, find_local, local_file, package_file

CLI_MARK = "used without --weights"  # the shipped weights, what the commands load by default
WEIGHTS_TRUE_MARK = "weights=True"  # the registry's default tag of a variant, what the Python API's True means


def _metric_from(meta: Mapping[str, Any] | None, key: str) -> float | None:
    if not meta:
        return None
    for holder in (meta.get("metrics"), meta):
        if isinstance(holder, Mapping):
            for name in (key, f"val_{key}"):
                value = holder.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value)
    return None


def resolved_accuracy(entry: WeightsEntry) -> tuple[Accuracy, ...]:
    """``entry.accuracy`` with values read from the weights' JSON metadata where they come from there."""
    if not any(a.metadata_key for a in entry.accuracy):
        return entry.accuracy
    meta = entry_metadata(entry)
    out = []
    for acc in entry.accuracy:
        if acc.metadata_key:
            value = _metric_from(meta, acc.metadata_key)
            note = acc.note
            if value is not None and isinstance(meta, Mapping):
                joints = (meta.get("eval") or {}).get("joint_subset") if isinstance(meta.get("eval"), Mapping) else None
                if joints:
                    note = ", ".join(filter(None, (note, f"{len(joints)} joints")))
                if meta.get("epoch") is not None:
                    note = ", ".join(filter(None, (note, f"epoch {meta['epoch']}")))
            acc = replace(acc, value=value, note=note)
        out.append(acc)
    return tuple(out)


# --------------------------------------------------------------------------------------------- tables


def weights_status(entry: WeightsEntry) -> str:
    """``shipped``, ``cached``, ``local`` (TPOSE_WEIGHTS_DIR), ``download`` or ``missing`` for a listing."""
    if entry.source == "package":
        return "shipped" if local_file(entry) is not None else "missing"
    if entry.source == "file":
        return "local" if local_file(entry) is not None else "missing"
    found = find_local(entry)
    if found is None:
        return "download"
    return "cached" if found == cache_path(entry) else "local"


def summarise_accuracy(accuracy: tuple[Accuracy, ...]) -> str:
    """One cell: ``published: COCO val2017 AP 71.7 (detector boxes) / 73.8 (GT boxes)``."""
    groups: dict[tuple[bool, str, str], list[Accuracy]] = {}
    for acc in accuracy:
        groups.setdefault((acc.published, acc.dataset, acc.metric), []).append(acc)
    parts = []
    for (published, dataset, metric), accs in groups.items():
        values = " / ".join(
            f"{a.formatted_value()} ({a.boxes}{', ' + a.note if a.note else ''})" for a in accs
        )
        parts.append(f"{'published' if published else 'measured'}: {dataset} {metric} {values}")
    return "; ".join(parts) or "not measured"


def _where(entry: WeightsEntry) -> str:
    if entry.downloadable:
        return entry.download_url()
    return str(package_file(entry) if entry.source == "package" else entry.path)


def format_weights_table(variant: str | None = None, markdown: bool = False) -> str:
    """The weights table for ``tpose weights`` / ``tpose info MODEL`` (``markdown`` for the README).

    One row per entry: model, tag, keypoints, input (HxW), training data, status (``shipped``,
    ``cached``, ``local``, ``download``, ``missing``) and accuracy (published or measured, with boxes);
    then where each file comes from and under which license.
    """
    entries = list_weights(variant)
    if not entries:
        return (f"no weights are registered for {variant}" if variant else "no weights are registered") + "\n"
    header = ("model", "tag", "keypoints", "input", "trained on", "status", "accuracy")
    body = []
    for e in entries:
        accuracy = summarise_accuracy(resolved_accuracy(e))
        marks = [m for m, on in ((WEIGHTS_TRUE_MARK, e.default and len(tags(e.variant)) > 1),
                                 (CLI_MARK, e.source == "package")) if on]
        model = e.variant + (f" ({', '.join(marks)})" if marks else "")
        size = f"{e.input_size[0]}x{e.input_size[1]}"
        body.append((model, e.tag, e.keypoint_set, size, e.train_data, weights_status(e), accuracy))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *body)]
    by_license: dict[str, list[str]] = {}
    for e in entries:
        by_license.setdefault(e.license or "license not stated", []).append(f"{e.name}: {_where(e)}")
    lines.append("")
    lines.append(f"{CLI_MARK}: what every tpose command without --weights uses (shipped, no download); "
                 f"{WEIGHTS_TRUE_MARK}: what load_pose_model(name, weights=True) fetches.")
    if any(a.boxes == DETECTOR_BOXES for e in entries for a in e.accuracy):
        lines.append(DETECTOR_NOTE[0].upper() + DETECTOR_NOTE[1:] + ".")
    for lic, where in by_license.items():
        lines.append(f"License: {lic}")
        lines += [f"  {w}" for w in where]
    return "\n".join(lines) + "\n"
