"""The released models' top-down augmentation, drawn as explicit crop parameters.

Drawing parameters apart from applying them lets the cached and the uncached paths (and tests)
replay exactly the same crop. A horizontal flip is composed into the affine matrix as a mirror about
the crop centre, which equals the released code's "flip the image, then crop at the flipped centre".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..codecs.affine import PIXEL_STD, get_affine_transform
from .keypoint_sets import KeypointSet

LOWER_BODY_WORDS = ("hip", "knee", "ankle", "pelvis", "heel", "toe", "foot")


@dataclass
class AugmentConfig:
    """Training augmentation; defaults are the released TransPose/HRNet recipe."""

    half_body_prob: float = 0.3
    half_body_min_joints: int = 8  # half-body only when more than this many joints are labelled
    half_body_padding: float = 1.5
    scale_factor: float = 0.35  # scale x clip(N(1, f), 1 - f, 1 + f)
    rotation_factor: float = 45.0  # degrees: clip(N(0, f), -2f, 2f)
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    # beyond the released recipe (all off by default): scenes unlike sports photos
    color_jitter: float = 0.0  # brightness, contrast and saturation each scaled by U(1 - c, 1 + c)
    grayscale_prob: float = 0.0
    blur_prob: float = 0.0  # Gaussian blur, sigma U(0.5, 2) crop pixels (out of focus, motion, low resolution)
    occlusion_prob: float = 0.0  # 1-3 random rectangles of random colour over the crop; the labels stay
    occlusion_max_area: float = 0.2  # each rectangle covers at most this share of the crop
    # persons cut off by the photo's lower edge (data.cutoff): the share of samples cut, and the torso levels
    # (0 shoulders, 1 hips) the edge is drawn from, uniformly
    cutoff_prob: float = 0.0
    cutoff_levels: tuple[float, float] = (0.4, 1.6)

    def __post_init__(self) -> None:
        probs = {n: getattr(self, n) for n in ("half_body_prob", "rotation_prob", "flip_prob", "grayscale_prob",
                                                "blur_prob", "occlusion_prob", "cutoff_prob")}
        for name, value in probs.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"augment.{name} is a probability: give a value from 0 to 1, got {value}")
        lo, hi = (float(v) for v in self.cutoff_levels)
        if not lo <= hi:
            raise ValueError(f"augment.cutoff_levels [{lo}, {hi}]: give the lower torso level first "
                             "(0 the shoulders, 1 the hips), e.g. [0.4, 1.6]")
        self.cutoff_levels = (lo, hi)


@dataclass
class CropParams:
    """Where to crop: ``center`` (x, y) and ``scale`` (w, h in units of 200 px) in original image coordinates."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float = 0.0
    flip: bool = False
    half_body: bool = field(default=False, compare=False)


@dataclass
class PixelParams:
    """Photometric changes of one training crop, drawn apart from applying them (see ``CropParams``)."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    grayscale: bool = False
    blur_sigma: float = 0.0
    occluders: tuple[tuple[float, float, float, float, tuple[int, int, int]], ...] = ()  # x, y, w, h (0..1), RGB

    @property
    def identity(self) -> bool:
        return (self.brightness == self.contrast == self.saturation == 1.0 and not self.grayscale
                and not self.blur_sigma and not self.occluders)


def sample_pixel_params(rng: np.random.Generator, config: AugmentConfig) -> PixelParams:
    """The photometric part of the augmentation; draws nothing when every such option is off."""
    out = PixelParams()
    c = float(config.color_jitter)
    if c > 0:
        out.brightness, out.contrast, out.saturation = (float(v) for v in rng.uniform(1 - c, 1 + c, 3))
    if config.grayscale_prob > 0:
        out.grayscale = bool(rng.random() < config.grayscale_prob)
    if config.blur_prob > 0 and rng.random() < config.blur_prob:
        out.blur_sigma = float(rng.uniform(0.5, 2.0))
    if config.occlusion_prob > 0 and rng.random() < config.occlusion_prob:
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            area = rng.uniform(0.02, config.occlusion_max_area)
            aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.0)))
            w, h = min(1.0, np.sqrt(area * aspect)), min(1.0, np.sqrt(area / aspect))
            x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
            boxes.append((float(x), float(y), float(w), float(h), color))
        out.occluders = tuple(boxes)
    return out


def apply_pixel_params(image: np.ndarray, params: PixelParams) -> np.ndarray:
    """``image`` (RGB uint8 [H, W, 3]) with ``params`` applied, in the order colour, blur, occluders."""
    if params.identity:
        return image
    out = image.astype(np.float32)
    if params.brightness != 1.0:
        out *= params.brightness
    if params.contrast != 1.0:
        mean = out.mean()
        out = (out - mean) * params.contrast + mean
    if params.saturation != 1.0 or params.grayscale:
        gray = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        factor = 0.0 if params.grayscale else params.saturation
        out = gray[..., None] + (out - gray[..., None]) * factor
    out = np.clip(out, 0, 255).astype(np.uint8)
    if params.blur_sigma:
        out = cv2.GaussianBlur(out, (0, 0), params.blur_sigma)
    height, width = out.shape[:2]
    for x, y, w, h, color in params.occluders:
        x0, y0 = int(x * width), int(y * height)
        out[y0 : y0 + max(1, int(h * height)), x0 : x0 + max(1, int(w * width))] = color
    return out


def lower_body_mask(keypoint_set: KeypointSet) -> np.ndarray:
    """[K] bool, True for joints of the lower half (hips and below), by keypoint name."""
    return np.array([any(w in n.lower() for w in LOWER_BODY_WORDS) for n in keypoint_set.names], dtype=bool)


def fit_aspect(width: float, height: float, aspect_ratio: float) -> tuple[float, float]:
    """Enlarge the short side so that width / height == aspect_ratio."""
    if width > aspect_ratio * height:
        height = width / aspect_ratio
    elif width < aspect_ratio * height:
        width = height * aspect_ratio
    return width, height


def half_body_center_scale(
    keypoints: np.ndarray,
    lower_mask: np.ndarray,
    aspect_ratio: float,
    rng: np.random.Generator,
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Centre and scale of the upper or the lower half's labelled joints, or None when too few.

    As in the released code the upper half is picked when ``randn() < 0.5`` (p ~ 0.69) and it has
    more than two joints, otherwise the lower half if it has more than two.
    """
    labelled = keypoints[:, 2] > 0
    upper = keypoints[labelled & ~lower_mask, :2]
    lower = keypoints[labelled & lower_mask, :2]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0).astype(np.float32)
    lo, hi = chosen.min(axis=0), chosen.max(axis=0)
    w, h = fit_aspect(float(hi[0] - lo[0]), float(hi[1] - lo[1]), aspect_ratio)
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * padding
    return center, scale


def sample_crop_params(
    rng: np.random.Generator,
    center: np.ndarray,
    scale: np.ndarray,
    keypoints: np.ndarray,
    lower_mask: np.ndarray,
    aspect_ratio: float,
    config: AugmentConfig,
) -> CropParams:
    """One random training crop, in the released code's order: half-body, scale, rotation, flip."""
    center = np.asarray(center, dtype=np.float32).copy()
    scale = np.asarray(scale, dtype=np.float32).copy()
    half = False
    if (keypoints[:, 2] > 0).sum() > config.half_body_min_joints and rng.random() < config.half_body_prob:
        found = half_body_center_scale(keypoints, lower_mask, aspect_ratio, rng, config.half_body_padding)
        if found is not None:
            center, scale = found
            half = True
    sf = config.scale_factor
    scale = scale * np.float32(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    rotation = 0.0
    if rng.random() < config.rotation_prob:
        rf = config.rotation_factor
        rotation = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    flip = bool(rng.random() < config.flip_prob)
    return CropParams(center=center, scale=scale, rotation=rotation, flip=flip, half_body=half)


def to_3x3(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(3, dtype=np.float64)
    out[:2] = matrix
    return out


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of ``outer`` applied after ``inner``."""
    return (to_3x3(outer) @ to_3x3(inner))[:2]


def crop_matrix(params: CropParams, output_hw: tuple[int, int]) -> np.ndarray:
    """2x3 matrix from original image coordinates into an ``output_hw`` = (H, W) crop, flip included."""
    matrix = get_affine_transform(params.center, params.scale, params.rotation, output_hw).astype(np.float64)
    if params.flip:
        cx = float(params.center[0])
        mirror = np.array([[-1.0, 0.0, 2.0 * cx], [0.0, 1.0, 0.0]])
        matrix = compose(matrix, mirror)
    return matrix
