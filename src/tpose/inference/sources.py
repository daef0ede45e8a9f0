"""Where prediction inputs come from: one image, a folder, a list of files or a video, plus detector boxes.

A batch job over thousands of files should not die on one unreadable image, so image sources collect the
files they could not read (``source.skipped``) and carry on; a single image given on its own raises instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.image_io import ImageReadError, read_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


@dataclass
class Frame:
    """One input picture: RGB uint8 ``image`` [H, W, 3]; ``index`` is its position (the frame number for videos)."""

    name: str
    image: np.ndarray
    index: int
    path: Path | None = None


@dataclass
class SkippedFile:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.path, "reason": self.reason}


@dataclass
class ImageFiles:
    """Image files read one at a time, in the given order."""

    paths: list[Path]
    skip_errors: bool = True
    kind: str = "folder"
    root: Path | None = None
    skipped: list[SkippedFile] = field(default_factory=list)

    fps: float | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if is_video(path) and path.is_file():
                self.skipped.append(SkippedFile(str(path), "is a video: videos are predicted one per call "
                                                f"(tpose predict {path.name}), not mixed with images"))
                continue
            try:
                image = read_image(path)
            except ImageReadError as err:
                if not self.skip_errors:
                    raise
                self.skipped.append(SkippedFile(str(path), str(err)))
                continue
            yield Frame(name=self.name_of(path), image=image, index=index, path=path)

    def name_of(self, path: Path) -> str:
        """The name of ``path`` in summaries and JSON: relative to the folder given, else the file name."""
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.name


@dataclass
class VideoFrames:
    """The frames of a video file, or of a live camera (``path`` an OpenCV device index), via OpenCV, as RGB.

    One frame-source path for both: ``fps`` and ``frame_size`` (H, W) are kept for writing; a file's frame
    count is what its container claims (checked against the frames read); a camera has none and runs until
    ``max_frames`` or until it stops delivering.
    """

    path: Path | int
    kind: str = "video"
    skipped: list[SkippedFile] = field(default_factory=list)
    max_frames: int | None = None

    @property
    def live(self) -> bool:
        return isinstance(self.path, int)

    @property
    def name(self) -> str:
        return f"camera{self.path}" if self.live else Path(self.path).stem

    def __post_init__(self) -> None:
        capture = self._open()
        try:
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps: float = fps if np.isfinite(fps) and fps > 0 else 25.0
            self.num_frames: int = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
            self.frame_size: tuple[int, int] = (
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            )
            if self.live:
                self.num_frames = 0  # a camera has no length
        finally:
            capture.release()
        self.frames_read: int | None = None

    def _open(self) -> cv2.VideoCapture:
        if self.live:
            capture = cv2.VideoCapture(int(self.path))
            if not capture.isOpened():
                capture.release()
                device = Path(f"/dev/video{self.path}")
                why = (f"{device} does not exist (no camera with that index here)" if not device.exists()
                       else f"{device} exists but cannot be opened (in use by another program, or no permission)")
                raise ImageReadError(f"camera webcam:{self.path} cannot be opened: {why}")
            return capture
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise ImageReadError(f"{self.path}: cannot open the video (missing, corrupt or an unsupported codec)")
        return capture

    def __len__(self) -> int:
        """The frame count the container reports; it can be approximate."""
        return self.num_frames

    @property
    def frames_missing(self) -> int:
        """Frames the container claims but that could not be decoded (after a complete pass)."""
        if self.frames_read is None or self.live:
            return 0
        return max(0, self.num_frames - self.frames_read)

    def __iter__(self) -> Iterator[Frame]:
        capture = self._open()
        stem = self.name
        index = 0
        try:
            while self.max_frames is None or index < self.max_frames:
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(name=f"{stem}#{index:06d}", image=rgb, index=index,
                            path=None if self.live else Path(self.path))
                index += 1
        finally:
            capture.release()
            self.frames_read = index
        if index == 0:
            self.skipped.append(SkippedFile(self.name if self.live else str(self.path), "no frame could be decoded"))
        elif not self.live and self.max_frames is None and self.frames_missing:
            self.skipped.append(SkippedFile(
                str(self.path), f"decoding stopped after {index} of the {self.num_frames} frames the file claims "
                "(a truncated or damaged video)"))


ImageSource = ImageFiles | VideoFrames


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension, case-insensitive), sorted by path."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _folders_with_images(folder: Path) -> list[Path]:
    """The direct sub-folders of ``folder`` that hold images at any depth (what a flat listing leaves out)."""
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in d.rglob("*"))]


CAMERA_PREFIXES = ("webcam:", "camera:")


def camera_index(source: object) -> int | None:
    """The OpenCV device index of ``webcam:N`` (or ``camera:N``); None for anything else."""
    text = str(source)
    for prefix in CAMERA_PREFIXES:
        if text.startswith(prefix):
            rest = text[len(prefix):]
            if not rest.isdigit():
                raise ValueError(f"{text!r}: a camera is webcam:N with N the OpenCV device index, e.g. webcam:0")
            return int(rest)
    return None


def open_source(
    source: str | Path | Sequence[str | Path], skip_errors: bool | None = None, recursive: bool = False,
    max_frames: int | None = None,
) -> ImageSource:
    """An iterable of :class:`Frame` for an image file, a folder of images, a list of image files, a video file
    or a live camera (``webcam:0``: OpenCV device 0; ``max_frames`` stops it).

    ``skip_errors`` (default: on for folders and lists, off for a single image) records unreadable
    images in ``source.skipped`` instead of raising :class:`ImageReadError`.
    """
    device = camera_index(source) if not isinstance(source, (list, tuple)) else None
    if device is not None:
        return VideoFrames(device, kind="video", max_frames=max_frames)
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        return ImageFiles(paths, skip_errors=True if skip_errors is None else skip_errors, kind="files")
    path = Path(source)
    if path.is_dir():
        paths = list_images(path, recursive=recursive)
        nested = [] if recursive else _folders_with_images(path)
        if not paths:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            inside = (f"; its sub-folder(s) {', '.join(d.name for d in nested[:5])} do: give them as inputs"
                      if nested else f" (looked for {exts})")
            raise ValueError(f"{path}: the folder holds no images{inside}")
        files = ImageFiles(paths, skip_errors=True if skip_errors is None else skip_errors, kind="folder", root=path)
        files.skipped += [SkippedFile(str(d), f"a sub-folder with images: not searched (only {path}'s own images "
                                      f"are; give {d} as an input of its own)") for d in nested]
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image, folder or video")
    if is_video(path):
        return VideoFrames(path, max_frames=max_frames)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        known = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; expected an image or video ({known})")
    return ImageFiles([path], skip_errors=False if skip_errors is None else skip_errors, kind="image")


def load_coco_image_ids(gt_json: str | Path | dict) -> dict[str, int]:
    """``file_name`` -> image id from a COCO ground-truth file (its ``images`` list)."""
    data = _read_json(gt_json) if not isinstance(gt_json, dict) else gt_json
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{gt_json}: not a COCO annotation file (no 'images' list)")
    ids: dict[str, int] = {}
    for i, record in enumerate(data["images"]):
        try:
            ids[Path(str(record["file_name"])).name] = int(record["id"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{gt_json}: images[{i}] needs 'file_name' and an integer 'id', got {record!r}") from None
    return ids


def image_id_for(name: str | Path, name_to_id: dict[str, int] | None = None) -> int | None:
    """A file's COCO image id: from ``name_to_id`` (a ground-truth file) or its numeric stem (``000000000785.jpg``)."""
    base = Path(str(name)).name
    if name_to_id and base in name_to_id:
        return name_to_id[base]
    stem = Path(base).stem
    return int(stem) if stem.isdigit() else None


@dataclass
class Detections:
    """Person boxes (x, y, w, h) and scores per image id, from a COCO detection-results file."""

    boxes: dict[int, tuple[np.ndarray, np.ndarray]]
    name_to_id: dict[str, int] = field(default_factory=dict)
    source: str = ""
    dropped: int = 0  # records below the score threshold, of another category, or with an empty box
    empty_boxes: list[int] = field(default_factory=list)  # indices of records with zero or negative w or h

    def __len__(self) -> int:
        return sum(len(s) for _, s in self.boxes.values())

    def image_id(self, name: str | Path) -> int | None:
        return image_id_for(name, self.name_to_id)

    def for_image(self, name: str | Path | int) -> tuple[np.ndarray, np.ndarray] | None:
        """Boxes [N, 4] and scores [N] of an image (by id or file name), best first; None when its id is unknown."""
        image_id = name if isinstance(name, (int, np.integer)) else self.image_id(name)
        if image_id is None:
            return None
        empty = (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
        return self.boxes.get(int(image_id), empty)


def load_detections(
    path: str | Path,
    gt_json: str | Path | None = None,
    min_score: float = 0.0,
    category_id: int | None = 1,
) -> Detections:
    """Read a COCO detection-results JSON (a list of ``{image_id, bbox, score, category_id}``).

    Files are matched to image ids through ``gt_json`` (``images[].file_name``) when given, else by their
    numeric stem. Records of other categories (when ``category_id`` is set) or scoring below ``min_score``
    are dropped; a malformed record raises ``ValueError`` naming it.
    """
    data = _read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: a detection-results file holds a JSON list of records, got {type(data).__name__}")
    per_image: dict[int, list[tuple[list[float], float]]] = {}
    dropped = 0
    empty: list[int] = []
    other_categories: dict[int, int] = {}  # category id -> records of it that were dropped
    below = 0
    for i, record in enumerate(data):
        try:
            image_id = int(record["image_id"])
            box = [float(v) for v in record["bbox"]]
            score = float(record.get("score", 1.0))
            category = record.get("category_id")
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{path}: record {i} needs 'image_id', a 4-number 'bbox' and a numeric 'score', got {record!r}"
            ) from None
        if len(box) != 4 or not all(np.isfinite(box)) or not np.isfinite(score):
            raise ValueError(f"{path}: record {i} has a bad bbox or score (need finite x, y, w, h): {record!r}")
        if category_id is not None and category is not None and int(category) != category_id:
            dropped += 1
            other_categories[int(category)] = other_categories.get(int(category), 0) + 1
            continue
        if score < min_score:
            dropped += 1
            below += 1
            continue
        if box[2] <= 1e-3 or box[3] <= 1e-3:
            dropped += 1
            empty.append(i)
            continue
        per_image.setdefault(image_id, []).append((box, score))
    if data and not per_image:
        raise ValueError(_why_no_box(path, len(data), other_categories, below, min_score, category_id))
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for image_id, items in per_image.items():
        items.sort(key=lambda item: -item[1])
        boxes[image_id] = (
            np.array([b for b, _ in items], dtype=np.float32).reshape(-1, 4),
            np.array([s for _, s in items], dtype=np.float32),
        )
    name_to_id = load_coco_image_ids(gt_json) if gt_json is not None else {}
    return Detections(boxes=boxes, name_to_id=name_to_id, source=str(path), dropped=dropped, empty_boxes=empty)


def _why_no_box(path: str | Path, records: int, other_categories: dict[int, int], below: int, min_score: float,
                category_id: int | None) -> str:
    """Why a detections file with records gives no box at all, and what to give instead."""
    reasons = []
    if other_categories:
        found = ", ".join(f"{n} of category_id {c}" for c, n in sorted(other_categories.items()))
        reasons.append(f"{found}, which is not a person (category_id {category_id}): give person detections")
    if below:
        reasons.append(f"{below} score below --min-box-score {min_score}: lower it")
    rest = records - sum(other_categories.values()) - below
    if rest:
        reasons.append(f"{rest} have a box of zero or negative width or height")
    return f"{path}: none of its {records} record(s) is a usable person box: " + "; ".join(reasons)


def _read_json(path: str | Path) -> object:
    path = Path(path)
    try:
        with path.open() as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
