"""Keypoint sets as data: names, flip pairs, skeleton, OKS sigmas, joint weights and colours.

COCO-17, LSP-14 and MPII-16 are built in; any other set loads from a small YAML or JSON file with
the same fields (see ``KeypointSet.from_file``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class KeypointSet:
    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()
    joint_weights: tuple[float, ...] = ()
    # per-keypoint RGB colour for drawing; defaults to left = blue, right = orange, centre = green
    colors: tuple[tuple[int, int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(set(self.names)) != k:
            raise ValueError(f"keypoint set {self.name!r}: duplicate keypoint names")
        for a, b in (*self.flip_pairs, *self.skeleton):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"keypoint set {self.name!r}: index pair ({a}, {b}) outside 0..{k - 1}")
        for label, values in (("sigmas", self.sigmas), ("joint_weights", self.joint_weights), ("colors", self.colors)):
            if values and len(values) != k:
                raise ValueError(f"keypoint set {self.name!r}: {label} has {len(values)} entries for {k} keypoints")
        if not self.sigmas:
            object.__setattr__(self, "sigmas", (0.05,) * k)
        if not self.joint_weights:
            object.__setattr__(self, "joint_weights", (1.0,) * k)
        if not self.colors:
            object.__setattr__(self, "colors", tuple(_side_color(n) for n in self.names))

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_index(self) -> list[int]:
        """``flip_index()[k]`` is the keypoint that k becomes in a mirrored image."""
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": list(self.sigmas),
            "joint_weights": list(self.joint_weights),
            "colors": [list(c) for c in self.colors],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeypointSet:
        try:
            names = data["names"]
        except KeyError:
            raise ValueError("a keypoint set needs a 'names' list") from None
        allowed = {"name", "names", "flip_pairs", "skeleton", "sigmas", "joint_weights", "colors"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown keypoint set fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(
            name=str(data.get("name", "custom")),
            names=tuple(str(n) for n in names),
            flip_pairs=tuple(tuple(int(i) for i in p) for p in data.get("flip_pairs", ())),
            skeleton=tuple(tuple(int(i) for i in p) for p in data.get("skeleton", ())),
            sigmas=tuple(float(s) for s in data.get("sigmas", ())),
            joint_weights=tuple(float(s) for s in data.get("joint_weights", ())),
            colors=tuple(tuple(int(c) for c in rgb) for rgb in data.get("colors", ())),
        )

    @classmethod
    def from_names(cls, name: str, names: Sequence[str], skeleton: Sequence[Sequence[int]] = ()) -> KeypointSet:
        """A set known only by its joint names (e.g. a COCO file's ``categories[0].keypoints``): a built-in
        set when the names are one's, otherwise flip pairs from ``left``/``right`` names."""
        names = tuple(str(n) for n in names)
        for known in BUILTIN.values():
            if known.names == names:
                return known
        pairs = []
        for i, n in enumerate(names):
            twin = _mirror_name(n)
            if twin != n and twin in names and i < names.index(twin):
                pairs.append((i, names.index(twin)))
        return cls(name=name, names=names, flip_pairs=tuple(pairs),
                   skeleton=tuple((int(a), int(b)) for a, b in skeleton))

    @classmethod
    def from_file(cls, path: str | Path) -> KeypointSet:
        """Load a custom set from ``.yaml``/``.yml`` or ``.json``."""
        path = Path(path)
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a keypoint set file must hold a mapping with 'names', got {type(data).__name__}")
        data.setdefault("name", path.stem)
        return cls.from_dict(data)


def _mirror_name(name: str) -> str:
    """``left_wrist`` <-> ``right_wrist`` (also ``l_``/``r_`` prefixes); other names are their own mirror."""
    for a, b in (("left", "right"), ("right", "left"), ("l_", "r_"), ("r_", "l_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


def _side_color(name: str) -> tuple[int, int, int]:
    n = name.lower()
    if n.startswith(("left", "l_")) or "_left" in n:
        return (51, 153, 255)
    if n.startswith(("right", "r_")) or "_right" in n:
        return (255, 128, 0)
    return (0, 200, 80)


COCO17 = KeypointSet(
    name="coco17",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
            0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    joint_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5),
)

# LSP / LSPET order (lspet/README.txt)
LSP14 = KeypointSet(
    name="lsp14",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
        "neck", "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (9, 12), (9, 10),
              (10, 11), (12, 13), (2, 8), (3, 9)),
    sigmas=(0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.062, 0.072, 0.079, 0.079, 0.072, 0.062, 0.079, 0.035),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0),
)

MPII16 = KeypointSet(
    name="mpii16",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
        "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11),
              (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
)

BUILTIN = {s.name: s for s in (COCO17, LSP14, MPII16)}

# the 12 limb joints that COCO-17 and LSP-14 share, by name (shoulders, elbows, wrists, hips, knees, ankles)
LIMB_JOINTS = tuple(
    f"{side}_{part}" for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for side in ("left", "right")
)


def default_keypoint_set(num_keypoints: int) -> KeypointSet:
    """COCO-17, LSP-14 or MPII-16 by count; otherwise generic names ``kp0``, ``kp1``..."""
    for known in (COCO17, LSP14, MPII16):
        if known.num_keypoints == num_keypoints:
            return known
    return KeypointSet(name=f"generic{num_keypoints}", names=tuple(f"kp{i}" for i in range(num_keypoints)))


def keypoint_set_from_metadata(meta: Any) -> KeypointSet | None:
    """The keypoint set saved with weights (a built-in name, a JSON string or a full definition), if any."""
    value = meta.get("keypoint_set") if isinstance(meta, Mapping) else None
    if not value:
        return None
    if isinstance(value, Mapping):
        return KeypointSet.from_dict(dict(value))
    text = str(value).strip()
    return KeypointSet.from_dict(json.loads(text)) if text.startswith("{") else get_keypoint_set(text)


def resolve_keypoint_set(
    explicit: str | Path | KeypointSet | None, metadata: Any, count: int, where: str
) -> KeypointSet:
    """The one rule for which keypoint set a model predicts: an explicit set (it must have the model's
    ``count``), else the set its weights' metadata records, else the built-in set of that count."""
    if explicit is not None:
        chosen = get_keypoint_set(explicit)
        if chosen.num_keypoints != count:
            raise ValueError(f"keypoint set {chosen.name!r} has {chosen.num_keypoints} keypoints but the model "
                             f"predicts {count} ({where}); give a set of {count} keypoints, or leave it out to use "
                             "the weights' own")
        return chosen
    found = keypoint_set_from_metadata(metadata)
    if found is not None:
        if found.num_keypoints != count:
            raise ValueError(f"{where}: its metadata names {found.num_keypoints} keypoints but it predicts {count}")
        return found
    return default_keypoint_set(count)


def get_keypoint_set(name_or_path: str | Path | KeypointSet) -> KeypointSet:
    """A built-in set by name (``coco17``, ``lsp14``, ``mpii16``) or a custom one from a file."""
    if isinstance(name_or_path, KeypointSet):
        return name_or_path
    key = str(name_or_path).lower()
    if key in BUILTIN:
        return BUILTIN[key]
    aliases = {"coco": "coco17", "lsp": "lsp14", "lspet": "lsp14", "mpii": "mpii16"}
    if key in aliases:
        return BUILTIN[aliases[key]]
    path = Path(name_or_path)
    if path.exists():
        return KeypointSet.from_file(path)
    raise ValueError(f"unknown keypoint set {name_or_path!r}: use one of {sorted(BUILTIN)} or a YAML/JSON file path")
