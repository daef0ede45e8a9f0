"""Leeds Sports Pose (the original LSP): 2,000 single-person sports images, 14 joints in LSPET's order.

Its ``joints.mat`` is laid out (3, 14, N), and its third row flags *occluded* joints (1 = occluded), the
inverse of LSPET's visibility flag. Every LSP joint carries a labelled position, so occluded joints become
COCO's v = 1 (labelled, not visible: trained on, left out of PCK) and the others v = 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .image_io import image_shape
from .lspet import load_lspet_joints, tight_box
from .records import VISIBLE, PersonRecord

NUM_IMAGES = 2000


def lsp_image_path(root: str | Path, number: int) -> Path:
    """Path of image ``number`` (1-based, as in the file names ``im0001.jpg``)."""
    return Path(root) / "images" / f"im{number:04d}.jpg"


def load_lsp_records(root: str | Path, first: int = 1, last: int = NUM_IMAGES) -> list[PersonRecord]:
    """One record per image ``im{first:04d}`` .. ``im{last:04d}`` (inclusive, 1-based).

    The box is the tight box of all labelled joints inside the image (occluded ones included: their
    positions are annotated); keypoints are (x, y, v) with v = 2 visible, 1 occluded.
    """
    root = Path(root)
    joints = load_lspet_joints(root)  # reads the (3, 14, N) layout too
    n = joints.shape[0]
    if not 1 <= first <= last <= n:
        raise ValueError(f"LSP image range {first}..{last} is outside 1..{n} ({root / 'joints.mat'})")
    if (joints[first - 1:last, :, 2] > 0).all():
        raise ValueError(f"{root / 'joints.mat'}: every joint of images {first}..{last} is flagged occluded, so none "
                         "would be scored; LSP's third row flags occluded joints (1 = occluded), the inverse of "
                         "LSPET's: for a file in LSPET's convention (1 = visible) use type: lspet")
    records = []
    for number in range(first, last + 1):
        path = lsp_image_path(root, number)
        kpts = joints[number - 1].astype(np.float32)
        kpts[:, 2] = np.where(kpts[:, 2] > 0, 1.0, float(VISIBLE))
        height, width = image_shape(path)
        records.append(PersonRecord(image_path=str(path), box=tight_box(kpts, width, height), keypoints=kpts,
                                    image_id=number))
    return records
