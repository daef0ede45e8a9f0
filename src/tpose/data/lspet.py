"""Leeds Sports Pose Extended: 10,000 single-person images, 14 joints (LSP order), from ``joints.mat``.

Split convention: ``im00001``-``im09000`` train, ``im09001``-``im10000`` validation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .image_io import image_shape
from .records import VISIBLE, PersonRecord

NUM_JOINTS = 14
NUM_IMAGES = 10000
TRAIN_RANGE = (1, 9000)
VAL_RANGE = (9001, 10000)


def load_lspet_joints(root: str | Path) -> np.ndarray:
    """All annotations as [N, 14, 3] (x, y, visible), whichever layout the ``joints.mat`` copy uses.

    Coordinates are kept exactly as stored; joints with visible = 0 carry placeholder coordinates.
    """
    from scipy.io import loadmat

    path = Path(root) / "joints.mat"
    if not path.is_file():
        raise FileNotFoundError(f"LSPET annotations not found: {path} (expected joints.mat in the LSPET root)")
    try:
        mat = loadmat(str(path))
    except Exception as err:
        raise ValueError(f"cannot read {path} as a MATLAB file: {err}") from err
    if "joints" not in mat:
        raise ValueError(f"{path} has no array 'joints' (found {sorted(k for k in mat if not k.startswith('__'))})")
    joints = np.asarray(mat["joints"], dtype=np.float64)
    if joints.ndim != 3:
        raise ValueError(f"{path}: 'joints' must be 3-D, got shape {joints.shape}")
    if joints.shape[:2] == (NUM_JOINTS, 3):  # (14, 3, N): the LSPET release
        joints = joints.transpose(2, 0, 1)
    elif joints.shape[:2] == (3, NUM_JOINTS):  # (3, 14, N): the LSP layout
        joints = joints.transpose(2, 1, 0)
    elif joints.shape[1:] != (NUM_JOINTS, 3):  # (N, 14, 3) is already right
        raise ValueError(f"{path}: 'joints' has shape {joints.shape}; expected (14, 3, N), (3, 14, N) or (N, 14, 3)")
    return np.ascontiguousarray(joints)


def lspet_image_path(root: str | Path, number: int) -> Path:
    """Path of image ``number`` (1-based, as in the file names)."""
    return Path(root) / "images" / f"im{number:05d}.jpg"


def tight_box(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """(x, y, w, h) spanning the labelled joints inside the image; all labelled joints if none lies inside."""
    labelled = keypoints[:, 2] > 0
    xy = keypoints[:, :2]
    inside = labelled & (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < width) & (xy[:, 1] < height)
    chosen = xy[inside] if inside.any() else xy[labelled]
    if chosen.shape[0] == 0:
        return np.array([0.0, 0.0, float(width), float(height)], dtype=np.float32)
    lo, hi = chosen.min(axis=0), chosen.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float32)


def load_lspet_records(root: str | Path, first: int = TRAIN_RANGE[0], last: int = TRAIN_RANGE[1]) -> list[PersonRecord]:
    """One record per image ``im{first:05d}`` .. ``im{last:05d}`` (inclusive, 1-based).

    The box is the tight box of the visible joints that lie inside the image (its larger side is the
    PCK normaliser); ``keypoints`` keep every joint, v = 2 for visible ones and v = 0 for the others, whose
    coordinates LSPET leaves as placeholders (so they are unlabelled, not occluded).
    """
    root = Path(root)
    joints = load_lspet_joints(root)
    n = joints.shape[0]
    if not 1 <= first <= last <= n:
        raise ValueError(f"LSPET image range {first}..{last} is outside 1..{n}")
    if not (joints[first - 1:last, :, 2] > 0).any():
        raise ValueError(f"{root / 'joints.mat'}: every joint of images {first}..{last} is marked invisible, so "
                         "there is nothing to train or score on; check the file (LSPET's third row is 1 for a "
                         "visible joint), and for the original LSP, whose third row flags occluded joints, use "
                         "type: lsp")
    records = []
    for number in range(first, last + 1):
        path = lspet_image_path(root, number)
        kpts = joints[number - 1].astype(np.float32)
        kpts[:, 2] = np.where(kpts[:, 2] > 0, float(VISIBLE), 0.0)  # invisible joints have no position
        height, width = image_shape(path)
        box = tight_box(kpts, width, height)
        records.append(PersonRecord(image_path=str(path), box=box, keypoints=kpts, image_id=number))
    return records
