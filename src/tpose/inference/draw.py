"""Skeleton drawing in the keypoint set's colours, sized to the image so it reads at any resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from ..data.keypoint_sets import KeypointSet

# a person scoring below this (box score x mean confident keypoint score), or showing fewer than
# MIN_DRAWN_KEYPOINTS keypoints, is not drawn: on photos these are fragments (a lone keypoint on a teacup);
# a tracked person of a video is drawn while its track lives (the tracker vouches for it across frames)
MIN_DRAWN_PERSON_SCORE = 0.3
MIN_DRAWN_KEYPOINTS = 2
_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel accurate, anti-aliased drawing
_ONE = 1 << _SHIFT


class _Pose(Protocol):
    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray


def line_width_for(image_shape: Sequence[int]) -> int:
    """About 1 px per 240 px of the shorter side (2 px for a 640x480 photo)."""
    return max(1, int(round(min(image_shape[0], image_shape[1]) / 240)))


def _fixed(point: np.ndarray) -> tuple[int, int]:
    return int(round(float(point[0]) * _ONE)), int(round(float(point[1]) * _ONE))


def draw_keypoints(
    canvas: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
    line_width: int | None = None,
) -> np.ndarray:
    """Draw one person's skeleton onto ``canvas`` (RGB uint8) in place and return it.

    Only keypoints scoring at least ``threshold`` are drawn, and only limbs whose both ends are drawn;
    a limb takes the mean colour of its two joints, so left/right limbs keep their side's colour.
    """
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    conf = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(kpts) != keypoint_set.num_keypoints or len(conf) != len(kpts):
        raise ValueError(
            f"{len(kpts)} keypoints / {len(conf)} scores do not fit keypoint set {keypoint_set.name!r} "
            f"({keypoint_set.num_keypoints} keypoints)"
        )
    width = line_width or line_width_for(canvas.shape)
    radius = max(2, int(round(width * 1.5)))
    shown = (conf >= threshold) & np.isfinite(kpts).all(axis=1)
    colors = np.asarray(keypoint_set.colors, dtype=np.float64)
    for a, b in keypoint_set.skeleton:
        if shown[a] and shown[b]:
            color = tuple(int(c) for c in (colors[a] + colors[b]) / 2)
            cv2.line(canvas, _fixed(kpts[a]), _fixed(kpts[b]), color, width, cv2.LINE_AA, _SHIFT)
    for k in np.flatnonzero(shown):
        color = tuple(int(c) for c in colors[k])
        cv2.circle(canvas, _fixed(kpts[k]), radius * _ONE, color, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas, _fixed(kpts[k]), radius * _ONE, (255, 255, 255), max(1, width // 2), cv2.LINE_AA, _SHIFT)
    return canvas


def draw_box(
    canvas: np.ndarray, box: np.ndarray, color: tuple[int, int, int] = (255, 255, 255), width: int = 1
) -> None:
    x, y, w, h = (float(v) for v in np.asarray(box).reshape(-1)[:4])
    cv2.rectangle(canvas, _fixed((x, y)), _fixed((x + w, y + h)), color, width, cv2.LINE_AA, _SHIFT)


def draw_poses(
    image: np.ndarray,
    persons: Sequence[_Pose],
    keypoint_set: KeypointSet,
    threshold: float = 0.3,
    draw_boxes: bool = False,
    line_width: int | None = None,
    min_person_score: float = MIN_DRAWN_PERSON_SCORE,
) -> np.ndarray:
    """A new RGB uint8 image with the skeleton (and optionally box) of every person worth drawing (see
    :func:`worth_drawing`) on a copy of ``image``."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"draw_poses expects an RGB image [H, W, 3], got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    canvas = np.ascontiguousarray(image).copy()
    width = line_width or line_width_for(canvas.shape)
    for person in persons:
        if not worth_drawing(person, threshold, min_person_score):
            continue
        track_id = getattr(person, "track_id", None)
        color = track_color(track_id) if track_id is not None else (255, 255, 255)
        if draw_boxes:
            draw_box(canvas, person.box, color, width=max(1, width // 2))
        draw_keypoints(canvas, person.keypoints, person.scores, keypoint_set, threshold, width)
        if track_id is not None:
            draw_track_id(canvas, person.box, int(track_id), color, width)
    return canvas


def worth_drawing(person: _Pose, threshold: float, min_person_score: float = MIN_DRAWN_PERSON_SCORE) -> bool:
    """Whether a person is drawn: at least ``MIN_DRAWN_KEYPOINTS`` keypoints score ``threshold``, and either it
    is tracked (a video) or its score (``score``, else the mean keypoint score) is at least ``min_person_score``."""
    if int((np.asarray(person.scores) >= threshold).sum()) < MIN_DRAWN_KEYPOINTS:
        return False
    if getattr(person, "track_id", None) is not None:
        return True
    score = getattr(person, "score", None)
    return float(np.mean(person.scores) if score is None else score) >= min_person_score


def track_color(track_id: int) -> tuple[int, int, int]:
    """A bright colour of its own per track id (golden-ratio hues), the same in every frame."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])  # type: ignore[return-value]


def draw_track_id(canvas: np.ndarray, box: np.ndarray, track_id: int, color: tuple[int, int, int], width: int) -> None:
    """``#id`` above the person's box (inside the image), on a dark backing so it reads on any background."""
    x, y = (float(v) for v in np.asarray(box).reshape(-1)[:2])
    scale = max(0.4, width / 4)
    text = f"#{track_id}"
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, width // 2))
    tx = int(min(max(x, 0), canvas.shape[1] - tw - 2))
    ty = int(min(max(y - 4, th + 2), canvas.shape[0] - base - 2))
    cv2.rectangle(canvas, (tx - 1, ty - th - 2), (tx + tw + 1, ty + base), (0, 0, 0), -1)
    cv2.putText(canvas, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, color, max(1, width // 2), cv2.LINE_AA)
