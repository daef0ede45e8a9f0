"""One annotated (or detected) person: the unit every top-down data set, cache and evaluator shares.

Geometry stays in original image coordinates so that crops, caches and decoders never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .keypoint_sets import KeypointSet, get_keypoint_set

# COCO's visibility flags, used by every loader: 0 unlabelled, 1 labelled but occluded, 2 labelled and visible.
# Training uses every labelled joint (v > 0); PCK counts only visible ones (v = 2).
OCCLUDED = 1
VISIBLE = 2


@dataclass
class PersonRecord:
    """``box`` is (x, y, w, h); ``keypoints`` [K, 3] is (x, y, v) with COCO's flags (``VISIBLE``, ``OCCLUDED``, 0).

    ``area`` is the COCO segment area (used by OKS); when not given it defaults to the box area.
    ``score`` is the detector's confidence (1 for ground truth), ``ann_id`` the source annotation id.
    ``image_bottom`` (None: the whole image) is the row where the photo ends for this person: pixels at or
    below it are blanked when cropping (a person cut off at the chest or hips, see ``data.cutoff``).
    """

    image_path: str
    box: np.ndarray
    keypoints: np.ndarray
    image_id: int
    score: float = 1.0
    area: float = 0.0
    ann_id: int = -1
    image_bottom: float | None = None

    def __post_init__(self) -> None:
        self.image_path = str(self.image_path)
        self.box = np.asarray(self.box, dtype=np.float32).reshape(-1)
        if self.box.shape != (4,):
            raise ValueError(f"record {self.describe()}: box must hold 4 numbers (x, y, w, h), got {self.box.shape}")
        kpts = np.asarray(self.keypoints, dtype=np.float32)
        if kpts.ndim != 2 or kpts.shape[1] != 3:
            raise ValueError(f"record {self.describe()}: keypoints must be [K, 3] (x, y, v), got {kpts.shape}")
        self.keypoints = kpts
        self.image_id = int(self.image_id)
        self.score = float(self.score)
        self.ann_id = int(self.ann_id)
        self.image_bottom = None if self.image_bottom is None else float(self.image_bottom)
        self.area = float(self.area) if self.area > 0 else float(max(self.box[2], 0) * max(self.box[3], 0))

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def visible(self) -> np.ndarray:
        """[K] bool: the joints that carry a label."""
        return self.keypoints[:, 2] > 0

    def describe(self) -> str:
        """Short identification for error messages."""
        ann = f", ann_id={self.ann_id}" if self.ann_id >= 0 else ""
        return f"(image_id={self.image_id}{ann}, image={self.image_path})"


JointMap = Mapping[str, "str | Sequence[str] | None"]


def joint_sources(src: KeypointSet, dst: KeypointSet, joint_map: JointMap | None = None) -> list[list[int]]:
    """For each ``dst`` joint, the ``src`` indices it is read from ([] = unlabelled).

    By default a joint is read from the ``src`` joint of the same name. ``joint_map`` overrides that per
    ``dst`` name: another ``src`` name, a list of names whose mean position is taken (e.g. LSP's ``neck``
    from MPII's ``[upper_neck, thorax]``), or None to leave the joint unlabelled.
    """
    joint_map = dict(joint_map or {})
    unknown = [n for n in joint_map if n not in dst.names]
    if unknown:
        raise ValueError(f"joint_map names {unknown} are not joints of {dst.name!r} (its joints: {list(dst.names)})")
    sources = []
    for name in dst.names:
        chosen = joint_map.get(name, name if name in src.names else None)
        names = [] if chosen is None else [chosen] if isinstance(chosen, str) else list(chosen)
        missing = [n for n in names if n not in src.names]
        if missing:
            raise ValueError(f"joint_map[{name!r}] reads {missing}, which {src.name!r} does not have "
                             f"(its joints: {list(src.names)})")
        sources.append([src.index(n) for n in names])
    return sources


def remap_keypoints(
    keypoints: np.ndarray,
    src_set: KeypointSet | str,
    dst_set: KeypointSet | str,
    names: Sequence[str] | None = None,
    joint_map: JointMap | None = None,
) -> np.ndarray:
    """Keypoints [..., K_src, C] in ``dst_set`` order [..., K_dst, C], matched by name.

    ``names`` limits the transfer (default: every name both sets share, e.g. the 12 ``LIMB_JOINTS`` of
    COCO-17 and LSP-14); ``joint_map`` maps names that differ (see ``joint_sources``). Destination
    joints with no source are zero, so v = 0 (unlabelled); a joint averaged from several sources is
    labelled only where all of them are, with the smallest of their flags.
    """
    src, dst = get_keypoint_set(src_set), get_keypoint_set(dst_set)
    kpts = np.asarray(keypoints)
    if kpts.ndim < 2 or kpts.shape[-2] != src.num_keypoints:
        raise ValueError(f"keypoints of shape {kpts.shape} do not hold the {src.num_keypoints} joints of {src.name!r}")
    if names is not None:
        missing = [n for n in names if n not in src.names or n not in dst.names]
        if missing:
            raise ValueError(f"joints {missing} are not in both {src.name!r} and {dst.name!r}")
        joint_map = {n: (n if n in names else None) for n in dst.names}
    out = np.zeros((*kpts.shape[:-2], dst.num_keypoints, kpts.shape[-1]), dtype=kpts.dtype)
    for d, idx in enumerate(joint_sources(src, dst, joint_map)):
        if len(idx) == 1:
            out[..., d, :] = kpts[..., idx[0], :]
        elif idx:
            parts = kpts[..., idx, :]
            flag = parts[..., 2].min(axis=-1)
            out[..., d, :2] = parts[..., :2].mean(axis=-2) * (flag > 0)[..., None]
            out[..., d, 2] = flag
            if kpts.shape[-1] > 3:
                out[..., d, 3:] = parts[..., 3:].mean(axis=-2)
    return out


def remap_records(
    records: Sequence[PersonRecord],
    src_set: KeypointSet | str,
    dst_set: KeypointSet | str,
    names: Sequence[str] | None = None,
    joint_map: JointMap | None = None,
) -> list[PersonRecord]:
    """Copies of ``records`` with keypoints in ``dst_set`` order (see ``remap_keypoints``); boxes unchanged."""
    return [replace(r, keypoints=remap_keypoints(r.keypoints, src_set, dst_set, names, joint_map)) for r in records]
