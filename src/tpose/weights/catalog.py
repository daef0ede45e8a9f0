"""Which trained weights exist for each model variant, where they come from and what they reach.

The architecture registry (``tpose.models.variants``) knows architectures; this one knows weights, one
:class:`WeightsEntry` per (variant, tag): the paper's released COCO checkpoints, downloaded from the
``Hub`` release of its GitHub repository, and the weights tpose ships inside the package. Every
accuracy says whether it was published or measured by us, on which data and with which boxes. Other
files tpose fetches (the person detector) are :class:`FileEntry` items. This module knows no files on
disk (``tpose.weights.files``) and no downloads (``tpose.weights.download``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.variants import list_variants

RELEASE_BASE_URL = "https://github.com/yangsenius/TransPose/releases/download/Hub"
ENV_BASE_URL = "TPOSE_WEIGHTS_BASE_URL"
ENV_OFFLINE = "TPOSE_OFFLINE"

SOURCES = ("release", "url", "package", "file")

# file names of the paper's released COCO checkpoints
RELEASED_FILES = {
    "transpose_r_a3": "tp_r_256x192_enc3_d256_h1024_mh8.pth",
    "transpose_r_a4": "tp_r_256x192_enc4_d256_h1024_mh8.pth",
    "transpose_h_s": "tp_h_32_256x192_enc4_d64_h128_mh1.pth",
    "transpose_h_a4": "tp_h_48_256x192_enc4_d96_h192_mh1.pth",
    "transpose_h_a6": "tp_h_48_256x192_enc6_d96_h192_mh1.pth",
}

RELEASE_LICENSE = "MIT (TransPose repository); trained on COCO train2017 (annotations CC BY 4.0, images Flickr terms)"
SHIPPED_TAG = "lsp-mpii-128x96"  # the weights inside the package
OWN_LICENSE = (
    "MIT (tpose code); trained on LSPET, LSP and MPII Human Pose, whose images and labels are for research use "
    "only: cite Johnson & Everingham (CVPR 2011, BMVC 2010) and Andriluka et al. (CVPR 2014)"
)
DETECTOR_BOXES = "detector boxes"
DETECTOR_NOTE = "detector boxes: the standard COCO val2017 person detections (person AP 56.4) the paper used"


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
    ``default`` marks the tag ``weights=True`` picks when downloading is allowed. ``size`` and ``sha256``,
    when known, are checked after a download.
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
    size: int | None = None
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


@dataclass(frozen=True)
class FileEntry:
    """A file tpose fetches that is not pose weights (the person detector): fixed URL, size and SHA-256."""

    name: str
    file: str
    url: str
    size: int
    sha256: str
    license: str = ""
    env_path: str | None = None  # the environment variable that points tpose at a local copy

    source = "url"
    downloadable = True

    def download_url(self, base: str | None = None) -> str:
        return self.url


YOLOX_NANO = FileEntry(
    name="yolox_nano",
    file="yolox_nano.onnx",
    url="https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
    size=3_659_407,
    sha256="c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",
    license="Apache-2.0 (Megvii YOLOX)",
    env_path="TPOSE_DETECTOR",
)

_ENTRIES: dict[tuple[str, str], WeightsEntry] = {}


def _check_hex(entry_name: str, sha256: str | None) -> None:
    if sha256 is not None and (len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256)):
        raise ValueError(f"weights {entry_name}: sha256 must be 64 lowercase hex digits, got {sha256!r}")


def register_weights(entry: WeightsEntry, replace_existing: bool = False) -> WeightsEntry:
    """Add ``entry`` (e.g. weights you trained, as source ``"file"`` or ``"url"``) to the registry."""
    if entry.variant not in list_variants():
        raise ValueError(f"unknown model {entry.variant!r} for weights {entry.tag!r}; available: {list_variants()}")
    if entry.source not in SOURCES:
        raise ValueError(f"weights {entry.name}: source must be one of {SOURCES}, got {entry.source!r}")
    if not entry.tag or ":" in entry.tag or os.sep in entry.tag:
        raise ValueError(f"weights tag {entry.tag!r} must be non-empty and contain no ':' or path separator")
    if entry.source == "file" and entry.path is None:
        raise ValueError(f"weights {entry.name} have source 'file' but no path")
    _check_hex(entry.name, entry.sha256)
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
                    Accuracy("AP", det, "COCO val2017", DETECTOR_BOXES, published=True),
                    Accuracy("AP", gt, "COCO val2017", "GT boxes", published=True),
                ),
                license=RELEASE_LICENSE,
                default=True,
            )
        )
    register_weights(
        WeightsEntry(
            variant="transpose_r_a4",
            tag=SHIPPED_TAG,
            file="transpose_r_a4_lsp_mpii_128x96.safetensors",
            source="package",
            keypoint_set="lsp14",
            input_size=(128, 96),
            train_data="LSPET im00001-im09000, LSP (2,000 persons), the MPII subset less its validation split",
            accuracy=tuple(
                Accuracy("PCK@0.2", None, dataset, "boxes from annotated joints", published=False, metadata_key=key)
                for dataset, key in (("LSPET im09001-im10000", "PCK@0.2"),
                                     ("MPII validation split", "PCK@0.2_mpii"),
                                     ("COCO excerpt (coco-mini)", "PCK@0.2_coco"))
            ),
            license=OWN_LICENSE,
            model_overrides={"num_keypoints": 14, "input_size": (128, 96)},
        )
    )


def base_url() -> str:
    """The release base URL: ``$TPOSE_WEIGHTS_BASE_URL`` (a mirror) or the paper's ``Hub`` release."""
    return os.environ.get(ENV_BASE_URL) or RELEASE_BASE_URL


def offline_mode() -> bool:
    """True when ``$TPOSE_OFFLINE`` is set to anything but ``0``/``false``/``no``/empty."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no", "off")


def list_weights(variant: str | None = None) -> list[WeightsEntry]:
    """Registered weights, in registration order (one variant's when ``variant`` is given)."""
    if variant is not None and variant not in list_variants():
        raise ValueError(f"unknown model {variant!r}; available: {', '.join(list_variants())}")
    return [e for e in _ENTRIES.values() if variant is None or e.variant == variant]


def tags(variant: str) -> list[str]:
    return [e.tag for e in list_weights(variant)]


def default_entry(variant: str) -> WeightsEntry:
    """The entry ``weights=True`` means online: the one marked ``default``, else the first registered."""
    entries = list_weights(variant)
    if not entries:
        have = sorted({e.variant for e in _ENTRIES.values()})
        raise ValueError(f"no weights are registered for {variant}; models with weights: {have}")
    return next((e for e in entries if e.default), entries[0])


def find(name: str, variant: str | None = None) -> WeightsEntry:
    """The entry a ``weights=`` name means: ``variant:tag``, or a tag of ``variant`` (or of the one variant that has
    it). One call that settles the variant and the tag (it asks the architecture registry once)."""
    named, tag = name.split(":", 1) if ":" in name else (variant, name)
    if variant is not None and named != variant:
        raise ValueError(f"model {variant!r} was asked for, but the weights {name!r} are {named} weights: drop "
                         f"--model/model=, or give {variant} weights")
    if named is None:
        owners = [e.variant for e in _ENTRIES.values() if e.tag == tag]
        if len(owners) != 1:
            known = sorted({e.tag for e in _ENTRIES.values()})
            raise ValueError(f"weights {name!r}: " + (f"several models have this tag ({', '.join(owners)}); name one "
                             f"(e.g. {owners[0]}:{name} or --model {owners[0]})" if owners else
                             f"no such file, and not a weights tag (known tags: {', '.join(known)})"))
        named = owners[0]
    variants = list_variants()
    if named not in variants:
        raise ValueError(f"unknown model {named!r}; available: {', '.join(variants)}")
    entry = _ENTRIES.get((named, tag))
    if entry is None:
        known_tags = ", ".join(e.tag for e in _ENTRIES.values() if e.variant == named) or "none"
        raise ValueError(f"{name}: no such weights file, and not a weights tag of {named} (its tags: {known_tags})")
    return entry


def lookup(variant: str, tag: str) -> WeightsEntry:
    """The entry of ``variant`` with this exact tag (``variant:tag`` is accepted too)."""
    if ":" in tag:
        named, tag = tag.split(":", 1)
        if named != variant:
            raise ValueError(f"weights {named}:{tag} are for {named}, not {variant}")
    if variant not in list_variants():
        raise ValueError(f"unknown model {variant!r}; available: {', '.join(list_variants())}")
    entry = _ENTRIES.get((variant, str(tag)))
    if entry is None:
        known = tags(variant)
        have = ", ".join(known) if known else "none"
        raise ValueError(f"no weights {tag!r} for {variant} (known tags: {have}); or give the path of a "
                         ".pth/.safetensors/.onnx file")
    return entry


_register_builtin()
