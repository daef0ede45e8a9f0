"""Pre-cropped person regions on disk, so training does not decode and crop full images every step.

Each record's region is a square around its crop centre, ``context`` times the padded box's longer
side (2.0 leaves room for the 1.35 scale augmentation at any rotation), clipped to the image and
shrunk (never enlarged) so its longer side is at most ``max_side``. The regions go into one data file
(JPEG bytes or raw pixels) plus an index holding, per entry, the 2x3 affine from original image
coordinates into the cached pixels; the data set composes it with the crop affine, so all geometry
stays in original image coordinates and decoding never needs to know a cache was used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..codecs.affine import PIXEL_STD
from .image_io import decode_image, encode_jpeg, read_image
from .records import PersonRecord

CACHE_FORMAT_VERSION = 1
STORAGES = ("jpeg", "raw")
MIN_AUGMENT_SCALE = 0.65  # the released recipe's strongest zoom-in (scale factor 0.35)


def default_cache_dir() -> Path:
    return Path(os.environ.get("TPOSE_CACHE_DIR", Path.home() / ".cache" / "tpose")) / "crops"


@dataclass
class CropCache:
    """Cache settings; ``open`` builds (once) or loads the cache for a list of records.

    ``max_side=None`` picks ``ceil(context * longer output side / 0.65)``: full detail even at the strongest
    zoom of the default augmentation (scale 0.65). Regions are never enlarged, so small images keep their
    native size. On LSPET at 128x96 this gives ~1 grey level mean difference from the uncached crop at JPEG
    quality 90 (a max_side of 256 gave ~2, up to 7 on zoomed-in crops).
    """

    cache_dir: str | Path | None = None
    max_side: int | None = None
    context: float = 2.0
    quality: int = 90
    storage: str = "jpeg"
    workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"crop cache storage must be one of {STORAGES}, got {self.storage!r}")
        if self.context < 1.0:
            raise ValueError(f"crop cache context must be >= 1, got {self.context}")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {self.quality}")

    def resolved_max_side(self, output_size: tuple[int, int]) -> int:
        """The longest cached side for crops of ``output_size`` = (H, W)."""
        if self.max_side is not None:
            return int(self.max_side)
        return int(math.ceil(self.context * max(output_size) / MIN_AUGMENT_SCALE))

    def open(
        self,
        records: Sequence[PersonRecord],
        centers: np.ndarray,
        scales: np.ndarray,
        output_size: tuple[int, int],
    ) -> CachedCrops:
        """The cache of these records' regions (``centers``/``scales`` [N, 2]), built on first use."""
        max_side = self.resolved_max_side(output_size)
        key = self.fingerprint(records, centers, scales, max_side)
        directory = Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()
        directory = directory / key
        if not (directory / "index.npz").is_file():
            self._build(directory, records, centers, scales, max_side)
        return CachedCrops(directory)

    def fingerprint(
        self, records: Sequence[PersonRecord], centers: np.ndarray, scales: np.ndarray, max_side: int
    ) -> str:
        """Hash of everything the cached pixels depend on, including each image file's size and mtime."""
        h = hashlib.sha1()
        params = [CACHE_FORMAT_VERSION, self.storage, int(self.quality), float(self.context), max_side, len(records)]
        h.update(json.dumps(params).encode())
        h.update(np.ascontiguousarray(centers, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(scales, dtype=np.float32).tobytes())
        for rec in records:
            try:
                st = os.stat(rec.image_path)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            h.update(f"{rec.image_path}|{stamp}\n".encode())
        return h.hexdigest()[:20]

    def _build(
        self,
        directory: Path,
        records: Sequence[PersonRecord],
        centers: np.ndarray,
        scales: np.ndarray,
        max_side: int,
    ) -> None:
        from tqdm import tqdm

        directory.mkdir(parents=True, exist_ok=True)
        tasks = [
            (rec.image_path, np.asarray(c, np.float64), np.asarray(s, np.float64), self.context, max_side,
             self.storage, int(self.quality))
            for rec, c, s in zip(records, centers, scales, strict=True)
        ]
        n = len(tasks)
        offsets = np.zeros(n + 1, dtype=np.int64)
        shapes = np.zeros((n, 2), dtype=np.int32)
        matrices = np.zeros((n, 2, 3), dtype=np.float64)
        tmp = f".{os.getpid()}.tmp"
        data_tmp = directory / f"data.bin{tmp}"
        bar = tqdm(total=n, desc=f"building crop cache ({n} crops)", unit="crop", disable=not self.progress)
        pool = None
        try:
            if self.workers > 0 and n > 1:
                import multiprocessing as mp

                pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(self.workers)
                results = pool.imap(_cache_entry, tasks, chunksize=16)
            else:
                results = map(_cache_entry, tasks)
            with open(data_tmp, "wb") as fh:
                for i, (payload, shape, matrix) in enumerate(results):
                    fh.write(payload)
                    offsets[i + 1] = offsets[i] + len(payload)
                    shapes[i] = shape
                    matrices[i] = matrix
                    bar.update(1)
        except BaseException:
            data_tmp.unlink(missing_ok=True)
            raise
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
        index_tmp = directory / f"index{tmp}.npz"
        np.savez(index_tmp, offsets=offsets, shapes=shapes, matrices=matrices, storage=np.array(self.storage))
        os.replace(data_tmp, directory / "data.bin")
        os.replace(index_tmp, directory / "index.npz")  # last: its presence marks a complete cache


def cache_region(
    center: np.ndarray, scale: np.ndarray, context: float, image_wh: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Integer pixel bounds (x0, y0, x1, y1), end-exclusive, of the cached square clipped to the image."""
    side = context * float(max(scale[0], scale[1])) * PIXEL_STD
    width, height = image_wh
    x0 = max(0, math.floor(center[0] - side / 2))
    y0 = max(0, math.floor(center[1] - side / 2))
    x1 = min(width, math.ceil(center[0] + side / 2) + 1)
    y1 = min(height, math.ceil(center[1] + side / 2) + 1)
    if x1 <= x0:  # region wholly outside the image: keep one edge pixel so the entry stays valid
        x0, x1 = (0, 1) if center[0] < 0 else (width - 1, width)
    if y1 <= y0:
        y0, y1 = (0, 1) if center[1] < 0 else (height - 1, height)
    return x0, y0, x1, y1


def _cache_entry(task: tuple) -> tuple[bytes, tuple[int, int], np.ndarray]:
    path, center, scale, context, max_side, storage, quality = task
    image = read_image(path)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = cache_region(center, scale, context, (width, height))
    region = image[y0:y1, x0:x1]
    rw, rh = x1 - x0, y1 - y0
    factor = min(1.0, max_side / max(rw, rh))
    if factor < 1.0:
        nw, nh = max(1, round(rw * factor)), max(1, round(rh * factor))
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / rw, nh / rh
        # cv2.resize maps pixel centres: u + 0.5 = (x - x0 + 0.5) * fx
        matrix = np.array([[fx, 0.0, (0.5 - x0) * fx - 0.5], [0.0, fy, (0.5 - y0) * fy - 0.5]])
    else:
        matrix = np.array([[1.0, 0.0, -float(x0)], [0.0, 1.0, -float(y0)]])
    region = np.ascontiguousarray(region)
    payload = encode_jpeg(region, quality) if storage == "jpeg" else region.tobytes()
    return payload, region.shape[:2], matrix


class CachedCrops:
    """A built cache: entry ``i`` is record ``i``'s region and its original-to-cache affine.

    Picklable for DataLoader workers: the data file is memory-mapped lazily in each process.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            with np.load(self.directory / "index.npz") as index:
                self.offsets = index["offsets"]
                self.shapes = index["shapes"]
                self.matrices = index["matrices"]
                self.storage = str(index["storage"])
        except Exception as err:
            raise ValueError(f"crop cache index {self.directory / 'index.npz'} is unreadable ({err}); delete the "
                             "folder to rebuild it") from err
        expected = int(self.offsets[-1])
        actual = (self.directory / "data.bin").stat().st_size if (self.directory / "data.bin").exists() else -1
        if actual != expected:
            raise ValueError(f"crop cache {self.directory} is incomplete (data.bin has {actual} bytes, index expects "
                             f"{expected}); delete the folder to rebuild it")
        self._data: np.ndarray | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.shapes)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_data"], state["_pid"] = None, -1
        return state

    def _buffer(self) -> np.ndarray:
        if self._data is None or self._pid != os.getpid():
            size = int(self.offsets[-1])
            if size == 0:
                self._data = np.zeros(0, dtype=np.uint8)
            else:
                self._data = np.memmap(self.directory / "data.bin", dtype=np.uint8, mode="r")
            self._pid = os.getpid()
        return self._data

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 region of entry ``i`` and the 2x3 matrix from original image coordinates into it."""
        buf = self._buffer()[self.offsets[i] : self.offsets[i + 1]]
        if self.storage == "jpeg":
            image = decode_image(np.asarray(buf), f"{self.directory / 'data.bin'} entry {i}")
        else:
            h, w = (int(v) for v in self.shapes[i])
            image = np.asarray(buf).reshape(h, w, 3)
        return image, self.matrices[i]
