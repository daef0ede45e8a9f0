"""Calibration data: real person crops from training data (a data set spec, records, or a folder of images)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...codecs import HeatmapCodec, normalize_image
from ...data.image_io import image_shape, read_image
from ...data.mixture import DataPart, build_part
from ...data.records import PersonRecord
from .settings import CALIBRATION_HELP, DEFAULT_CALIBRATION_COUNT, IMAGE_SUFFIXES, CalibrationDataRequired

# ------------------------------------------------------------------------------------------------- crops


@dataclass
class CropSet:
    """Normalised person crops [N, 3, H, W] (float32, as the model sees them) and where they came from."""

    images: np.ndarray
    description: str
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _image_files(entry: str | Path | Sequence[str | Path]) -> list[Path]:
    entries = [entry] if isinstance(entry, (str, Path)) else list(entry)
    files: list[Path] = []
    for item in entries:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"calibration image or folder not found: {p}")
    if not files:
        raise CalibrationDataRequired(f"no {'/'.join(IMAGE_SUFFIXES)} images in {entries}: " + CALIBRATION_HELP)
    return files


def _image_records(files: Sequence[Path], boxes: Sequence[Sequence[float] | None] | None) -> list[PersonRecord]:
    """One record per image: the given box, or the whole image (a folder of person crops)."""
    if boxes is not None and len(boxes) != len(files):
        raise ValueError(f"{len(boxes)} boxes for {len(files)} calibration images: give one box (or None) per image")
    records = []
    for i, path in enumerate(files):
        box = None if boxes is None else boxes[i]
        if box is None:
            h, w = image_shape(path)
            box = (0.0, 0.0, float(w), float(h))
        records.append(PersonRecord(image_path=str(path), box=np.asarray(box, np.float32),
                                    keypoints=np.zeros((1, 3), np.float32), image_id=i))
    return records


def is_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and "type" in value


def spec_label(spec: Mapping[str, Any]) -> str:
    name = spec.get("name") or spec["type"]
    bits = []
    if spec.get("first") or spec.get("last"):
        bits.append(f"images {spec.get('first') or 1}-{spec.get('last') or 'end'}")
    if spec.get("image_ids") is not None:
        bits.append(f"image ids {Path(str(spec['image_ids'])).name}" if isinstance(spec["image_ids"], (str, Path))
                    else f"{len(spec['image_ids'])} image ids")
    if spec.get("exclude_image_ids") is not None:
        ex = spec["exclude_image_ids"]
        bits.append(f"minus {Path(str(ex)).name}" if isinstance(ex, (str, Path)) else f"minus {len(ex)} image ids")
    return f"{name} ({', '.join(bits)})" if bits else str(name)


def source_parts(
    source: Any, boxes: Sequence[Sequence[float] | None] | None = None
) -> list[tuple[str, list[PersonRecord]]]:
    """(label, records) for each part of a calibration or validation source.

    ``source``: a data set spec (``{"type": "lspet", ...}``, read by ``tpose.data.mixture.build_part``), a
    ``DataPart``, a list of person records, a folder or image file(s) (whole-image boxes unless ``boxes``), or a
    list mixing specs and parts. None raises :class:`CalibrationDataRequired`.
    """
    if source is None or (isinstance(source, (list, tuple)) and len(source) == 0):
        raise CalibrationDataRequired(CALIBRATION_HELP)
    if isinstance(source, (str, Path)):
        return [(f"images in {source}", _image_records(_image_files(source), boxes))]
    if is_spec(source):
        return [(spec_label(source), build_part(source).records)]
    if isinstance(source, DataPart):
        return [(source.name, list(source.records))]
    if isinstance(source, Sequence):
        items = list(source)
        if all(isinstance(r, PersonRecord) for r in items):
            return [(f"{len(items)} person records", items)]
        if all(isinstance(r, (str, Path)) for r in items):
            return [(f"{len(items)} image files", _image_records(_image_files(items), boxes))]
        parts: list[tuple[str, list[PersonRecord]]] = []
        for item in items:
            parts += source_parts(item)
        return parts
    raise TypeError(f"cannot read calibration/validation data from {type(source).__name__}: " + CALIBRATION_HELP)


def crop_records(records: Sequence[PersonRecord], input_size: Sequence[int], padding: float = 1.25) -> np.ndarray:
    """Eval-mode crops of ``records`` exactly as ``TopDownDataset(train=False)`` makes them, [N, 3, H, W]."""
    codec = HeatmapCodec(tuple(input_size), padding=padding)
    out = np.empty((len(records), 3, *codec.input_size), dtype=np.float32)
    for i, rec in enumerate(records):
        x, y, bw, bh = (float(v) for v in rec.box)
        center, scale = codec.box_to_center_scale((x, y, max(bw, 1.0), max(bh, 1.0)))
        out[i] = normalize_image(codec.crop(read_image(rec.image_path), center, scale))
    return out


def calibration_crops(
    source: Any,
    input_size: Sequence[int],
    count: int = DEFAULT_CALIBRATION_COUNT,
    seed: int = 0,
    boxes: Sequence[Sequence[float] | None] | None = None,
) -> CropSet:
    """``count`` person crops drawn (seeded, without replacement) evenly from the parts of ``source``.

    A :class:`CropSet` or an array [N, 3, H, W] passes through (cut to ``count``). Sources as in
    :func:`source_parts`; each part gives an equal share, a part smaller than its share gives all it has.
    """
    if isinstance(source, CropSet):
        return CropSet(source.images[:count], source.description, list(source.sources))
    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[1] != 3:
            raise ValueError(f"calibration crops must be [N, 3, H, W], got {source.shape}")
        arr = np.ascontiguousarray(source[:count], dtype=np.float32)
        return CropSet(arr, f"{len(arr)} given crops", [])
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    parts = source_parts(source, boxes)
    rng = np.random.default_rng(seed)
    share = [count // len(parts) + (1 if i < count % len(parts) else 0) for i in range(len(parts))]
    chosen: list[PersonRecord] = []
    labels = []
    for (label, records), want in zip(parts, share, strict=True):
        take = min(want, len(records))
        idx = np.sort(rng.choice(len(records), size=take, replace=False)) if take < len(records) else np.arange(take)
        chosen += [records[i] for i in idx]
        labels.append(f"{take} from {label}")
    images = crop_records(chosen, input_size)
    return CropSet(images, f"{len(chosen)} person crops: " + "; ".join(labels), sorted({r.image_path for r in chosen}))


class CropReader:
    """A ``CalibrationDataReader`` over crops: ``get_next()`` yields ``{input: [batch, 3, H, W]}`` until done."""

    def __init__(self, crops: np.ndarray, input_name: str = "image", batch_size: int = 16) -> None:
        self.crops = np.ascontiguousarray(crops, dtype=np.float32)
        self.input_name = input_name
        self.batch_size = int(batch_size)
        self._iter: Iterator[dict[str, np.ndarray]] | None = None
        self._start, self._end = 0, len(self.crops)

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self._start, self._end, self.batch_size):
            yield {self.input_name: self.crops[i : min(i + self.batch_size, self._end)]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end, self._iter = int(start_index), int(end_index), None

    def __len__(self) -> int:
        return len(self.crops)


def as_reader(crops: np.ndarray, batch_size: int) -> Any:
    """Our reader registered as a subclass of ORT's abstract ``CalibrationDataReader`` (it checks the type)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CropReader, CalibrationDataReader):
        pass

    return _Reader(crops, batch_size=batch_size)
