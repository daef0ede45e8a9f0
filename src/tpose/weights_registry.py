"""Which trained weights exist for each model variant, where they come from and what they reach.

The model registry (``tpose.models.registry``) knows architectures; this one knows weights, one
:class:`WeightsEntry` per (variant, tag): the paper's released COCO checkpoints, downloaded from the
``Hub`` release of its GitHub repository, and the weights tpose ships inside the package. Every
accuracy says whether it was published or measured by us, on which data and with which boxes,
because GT boxes and detector boxes give very different numbers. Downloads live in :mod:`tpose.hub`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .models.registry import RELEASED_FILES, list_models

RELEASE_BASE_URL = "https://github.com/yangsenius/TransPose/releases/download/Hub"
ENV_BASE_URL = "TPOSE_WEIGHTS_BASE_URL"
ENV_OFFLINE = "TPOSE_OFFLINE"

SOURCES = ("release", "url", "package", "file")

_RELEASE_LICENSE = "MIT (TransPose repository); trained on COCO train2017 (annotations CC BY 4.0, images Flickr terms)"
_OWN_LICENSE = "MIT (tpose); trained on LSPET (research use only: cite Johnson & Everingham, CVPR 2011)"
_DETECTOR = "detector boxes"
_DETECTOR_NOTE = "detector boxes: the standard COCO val2017 person detections (person AP 56.4) the paper used"


@dataclass(frozen=True)
class Accuracy:
    """One accuracy figure: published in the paper or measured by us, always with its boxes.

    ``metadata_key`` names the metric in the weights' JSON metadata (``metrics`` mapping, with or
    without a ``val_`` prefix); the value is read from there when the file is at hand.
    """

    metric: str
    value: float | None
    dataset: str
    boxes: str
    published: bool
    metadata_key: str | None = None
    note: str = ""

    def formatted_value(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.1f}" if self.metric.startswith("AP") else f"{self.value:.3f}"

    def describe(self) -> str:
        origin = "published" if self.published else "measured"
        note = f", {self.note}" if self.note else ""
        return f"{self.metric} {self.formatted_value()} on {self.dataset}, {self.boxes}{note} ({origin})"


@dataclass(frozen=True)
class WeightsEntry:
    """One set of trained weights for a registered variant.

    ``source``: ``"release"`` (``file`` under the release base URL, see :func:`base_url`), ``"url"``
    (``url`` as given), ``"package"`` (``file`` inside ``tpose/weights/``), ``"file"`` (``path``).
    ``model_overrides`` turn the variant into the exact model the weights fit (e.g. 14 keypoints).
    ``default`` marks the tag ``pretrained=True`` picks when downloading is allowed.
    """

    variant: str
    tag: str
    file: str
    source: str
    keypoint_set: str
    input_size: tuple[int, int]
    train_data: str
    accuracy: tuple[Accuracy, ...] = ()
    license: str = ""
    sha256: str | None = None
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False
    url: str | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """``variant:tag``, the spelling accepted wherever a tag alone would be ambiguous."""
        return f"{self.variant}:{self.tag}"

    @property
    def downloadable(self) -> bool:
        return self.source in ("release", "url")

    def download_url(self, base: str | None = None) -> str:
        """Where the file is fetched from (``base`` replaces the release base URL)."""
        if self.source == "url":
            if not self.url:
                raise ValueError(f"weights {self.name} have source 'url' but no url")
            return self.url
        if self.source != "release":
            raise ValueError(f"weights {self.name} are not downloaded (source {self.source!r})")
        return f"{(base or base_url()).rstrip('/')}/{self.file}"


_ENTRIES: dict[tuple[str, str], WeightsEntry] = {}


# --------------------------------------------------------------------------------------------- registration


def register_weights(entry: WeightsEntry, replace_existing: bool = False) -> WeightsEntry:
    """Add ``entry`` (e.g. weights you trained, as source ``"file"`` or ``"url"``) to the registry."""
    if entry.variant not in list_models():
        raise ValueError(f"unknown model {entry.variant!r} for weights {entry.tag!r}; available: {list_models()}")
    if entry.source not in SOURCES:
        raise ValueError(f"weights {entry.name}: source must be one of {SOURCES}, got {entry.source!r}")
    if not entry.tag or ":" in entry.tag or os.sep in entry.tag:
        raise ValueError(f"weights tag {entry.tag!r} must be non-empty and contain no ':' or path separator")
    if entry.source == "file" and entry.path is None:
        raise ValueError(f"weights {entry.name} have source 'file' but no path")
    if entry.sha256 is not None and (len(entry.sha256) != 64 or not all(c in "0123456789abcdef" for c in entry.sha256)):
        raise ValueError(f"weights {entry.name}: sha256 must be 64 lowercase hex digits, got {entry.sha256!r}")
    key = (entry.variant, entry.tag)
    if key in _ENTRIES and not replace_existing:
        raise ValueError(f"weights {entry.name} are registered already (pass replace_existing=True)")
    _ENTRIES[key] = entry
    return entry


def unregister_weights(variant: str, tag: str) -> None:
    """Remove a registered entry (a no-op when absent)."""
    _ENTRIES.pop((variant, tag), None)


def _register_builtin() -> None:
    published = {  # COCO val2017 AP, detector boxes / GT boxes, from the paper
        "transpose_r_a3": (71.7, 73.8),
        "transpose_r_a4": (72.6, 75.1),
        "transpose_h_s": (74.2, 76.1),
        "transpose_h_a4": (75.3, 77.5),
        "transpose_h_a6": (75.8, 78.1),
    }
    for variant, file in RELEASED_FILES.items():
        det, gt = published[variant]
        register_weights(
            WeightsEntry(
                variant=variant,
                tag="coco-256x192",
                file=file,
                source="release",
                keypoint_set="coco17",
                input_size=(256, 192),
                train_data="COCO train2017",
                accuracy=(
                    Accuracy("AP", det, "COCO val2017", _DETECTOR, published=True),
                    Accuracy("AP", gt, "COCO val2017", "GT boxes", published=True),
                ),
                license=_RELEASE_LICENSE,
                default=True,
            )
        )
    register_weights(
        WeightsEntry(
            variant="transpose_r_a4",
            tag="lspet-128x96",
            file="transpose_r_a4_lspet_128x96.safetensors",
            source="package",
            keypoint_set="lsp14",
            input_size=(128, 96),
            train_data="LSPET im00001-im09000",
            accuracy=(
                Accuracy(
                    "PCK@0.2",
                    None,
                    "LSPET im09001-im10000",
                    "boxes from annotated joints",
                    published=False,
                    metadata_key="PCK@0.2",
                ),
            ),
            license=_OWN_LICENSE,
            model_overrides={"num_keypoints": 14, "image_size": (128, 96)},
        )
    )


# --------------------------------------------------------------------------------------------- lookup


def base_url() -> str:
    """The release base URL: ``$TPOSE_WEIGHTS_BASE_URL`` (a mirror) or the paper's ``Hub`` release."""
    return os.environ.get(ENV_BASE_URL) or RELEASE_BASE_URL


def offline_mode() -> bool:
    """True when ``$TPOSE_OFFLINE`` is set to anything but ``0``/``false``/``no``/empty."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no", "off")


def list_weights(variant: str | None = None) -> list[WeightsEntry]:
    """Registered weights, in registration order (one variant's when ``variant`` is given)."""
    if variant is not None and variant not in list_models():
        raise ValueError(f"unknown model {variant!r}; available: {', '.join(list_models())}")
    return [e for e in _ENTRIES.values() if variant is None or e.variant == variant]


def variants_with_weights(available_only: bool = False) -> list[str]:
    """Variants with registered weights; ``available_only`` drops shipped files missing from this install."""
    names = {e.variant for e in _ENTRIES.values() if not available_only or e.downloadable or local_file(e) is not None}
    return sorted(names)


def tags(variant: str) -> list[str]:
    return [e.tag for e in list_weights(variant)]


def default_tag(variant: str, offline: bool | None = None) -> str:
    """The tag ``pretrained=True`` means for ``variant``.

    Online: the entry marked ``default`` (the paper's COCO weights). Offline (``offline=True`` or
    ``$TPOSE_OFFLINE``): the default entry if already cached, else weights shipped with tpose, else
    any other entry already on disk; with nothing local, the default (whose error then explains
    how to fetch it by hand).
    """
    entries = list_weights(variant)
    if not entries:
        raise ValueError(f"no weights are registered for {variant}; models with weights: {variants_with_weights()}")
    preferred = next((e for e in entries if e.default), entries[0])
    if offline is None:
        offline = offline_mode()
    if not offline:
        return preferred.tag
    from .hub import find_local  # hub imports this module; the cache lookup lives there

    if find_local(preferred) is not None:
        return preferred.tag
    shipped = [e for e in entries if e.source == "package" and local_file(e) is not None]
    if shipped:
        return shipped[0].tag
    on_disk = [e for e in entries if find_local(e) is not None]
    return (on_disk[0] if on_disk else preferred).tag


def shipped_tag(variant: str) -> str | None:
    """The tag of weights shipped inside the package for ``variant`` (present in this install), if any."""
    for entry in list_weights(variant):
        if entry.source == "package" and local_file(entry) is not None:
            return entry.tag
    return None


def get_weights(variant: str, tag: str | bool | None = None, offline: bool | None = None) -> WeightsEntry:
    """The entry for ``variant`` and ``tag`` (``None``/``True``: :func:`default_tag`); ``variant:tag`` works too."""
    if isinstance(tag, str) and ":" in tag:
        named, tag = tag.split(":", 1)
        if named != variant:
            raise ValueError(f"weights {named}:{tag} are for {named}, not {variant}")
    if variant not in list_models():
        raise ValueError(f"unknown model {variant!r}; available: {', '.join(list_models())}")
    if tag is None or tag is True:
        tag = default_tag(variant, offline)
    if tag is False:
        raise ValueError("tag=False asks for no weights")
    entry = _ENTRIES.get((variant, str(tag)))
    if entry is None:
        known = tags(variant)
        have = f"known tags: {', '.join(known)}" if known else f"none; models with weights: {variants_with_weights()}"
        raise ValueError(f"no weights {tag!r} for {variant} ({have}); or give the path of a .pth/.safetensors file")
    return entry


# --------------------------------------------------------------------------------------------- local files


def _package_dir() -> Path:
    """``tpose/weights`` inside the installed package, found through importlib.resources."""
    root = resources.files("tpose").joinpath("weights")
    if isinstance(root, Path):
        return root
    # a zipped install: extract once for the life of the process
    import atexit
    from contextlib import ExitStack

    stack = ExitStack()
    atexit.register(stack.close)
    return Path(stack.enter_context(resources.as_file(root)))


def package_file(entry: WeightsEntry) -> Path:
    """Where a shipped entry's file lives in this install (whether or not it is there)."""
    if entry.source != "package":
        raise ValueError(f"weights {entry.name} are not shipped with tpose (source {entry.source!r})")
    return _package_dir() / entry.file


def local_file(entry: WeightsEntry) -> Path | None:
    """The file of a shipped (``package``) or ``file`` entry when it exists; downloads: see tpose.hub."""
    if entry.source == "package":
        path = package_file(entry)
    elif entry.source == "file":
        path = Path(entry.path) if entry.path is not None else None
    else:
        return None
    return path if path is not None and path.is_file() else None


def _metadata(entry: WeightsEntry) -> dict[str, Any] | None:
    path = local_file(entry)
    if path is None:
        return None
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            return json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            return None
    if path.suffix == ".safetensors":
        from .models.checkpoint import CheckpointError, read_metadata

        try:
            return read_metadata(path)
        except (CheckpointError, OSError):
            return None
    return None


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
    meta = _metadata(entry)
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
    from .hub import cache_path, find_local

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
        model = e.variant + (" (default)" if e.default and len(tags(e.variant)) > 1 else "")
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
    if any(a.boxes == _DETECTOR for e in entries for a in e.accuracy):
        lines.append(_DETECTOR_NOTE[0].upper() + _DETECTOR_NOTE[1:] + ".")
    for lic, where in by_license.items():
        lines.append(f"License: {lic}")
        lines += [f"  {w}" for w in where]
    return "\n".join(lines) + "\n"


_register_builtin()
