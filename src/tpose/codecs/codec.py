"""One configured codec between image keypoints and heatmaps (MMPose's idea): built once with the model's
input size, heatmap stride, Gaussian sigma and box padding, and used by the data set (encode), the
predictor, evaluation and explanation (decode, heatmap -> image), so none of them retypes those numbers.

Every size is (H, W). Coordinates are pixel centres: heatmap coordinate (x, y) is the centre of column x,
row y; the crop of a person box is the released models' (aspect forced to W / H, padded by 1.25).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .affine import box_to_center_scale, crop, get_affine_transform
from .decode import DEFAULT_DECODER, DecodeOptions, decode_heatmaps, flip_heatmaps_back, heatmap_to_image
from .heatmap import encode_gaussian

HEATMAP_STRIDE = 4  # TransPose's heatmaps are a quarter of the input, for every variant
BOX_PADDING = 1.25  # the released models' crop margin around a person box
SIGMA = 2.0  # the Gaussian of the training targets, in heatmap pixels


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints <-> heatmaps for crops of ``input_size`` = (H, W).

    Shapes: ``encode`` takes keypoints [K, 2] in heatmap pixels and returns targets [K, H/stride, W/stride]
    and weights [K]; ``decode`` takes heatmaps [N, K, h, w] and
    returns keypoints [N, K, 2] in heatmap pixels and scores [N, K]; ``to_image`` maps those back with
    per-person centres and scales [N, 2].
    """

    input_size: tuple[int, int]
    stride: int = HEATMAP_STRIDE
    sigma: float = SIGMA
    padding: float = BOX_PADDING

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.input_size)
        if h <= 0 or w <= 0 or h % self.stride or w % self.stride:
            raise ValueError(f"input size {h}x{w} must be positive and divisible by {self.stride} (the heatmap stride)")
        object.__setattr__(self, "input_size", (h, w))

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(H, W) of the heatmaps."""
        return self.input_size[0] // self.stride, self.input_size[1] // self.stride

    @property
    def aspect_ratio(self) -> float:
        """W / H of the input: every person box is widened or heightened to it."""
        return self.input_size[1] / self.input_size[0]

    # ------------------------------------------------------------------ boxes and crops
    def box_to_center_scale(self, box: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Crop centre [2] and scale [2] (units of 200 px) of a box (x, y, w, h)."""
        return box_to_center_scale(np.asarray(box, dtype=np.float64), self.aspect_ratio, self.padding)

    def crop(self, image: np.ndarray, center: np.ndarray, scale: np.ndarray, rotation: float = 0.0) -> np.ndarray:
        """The input-size crop of ``image`` (bilinear, zero border)."""
        return crop(image, center, scale, rotation, self.input_size)

    def input_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float = 0.0) -> np.ndarray:
        """2x3 matrix from image pixels into the input crop."""
        return get_affine_transform(center, scale, rotation, self.input_size)

    def heatmap_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float = 0.0) -> np.ndarray:
        """2x3 matrix from image pixels into heatmap pixels."""
        return get_affine_transform(center, scale, rotation, self.heatmap_size)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets [K, h, w] and weights [K] (0 for unlabelled joints) for keypoints [K, 2] in heatmap pixels
        (image keypoints through :meth:`heatmap_matrix` and ``affine_points``)."""
        return encode_gaussian(keypoints, visible, self.heatmap_size, self.sigma)

    def decode(self, heatmaps: np.ndarray | torch.Tensor, method: str = DEFAULT_DECODER,
               blur_kernel: int = DecodeOptions.blur_kernel) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [N, K, 2] in heatmap pixels and scores [N, K] by a registered decoding method."""
        return decode_heatmaps(heatmaps, method=method, blur_kernel=blur_kernel)

    def to_image(self, coords: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                 rotations: np.ndarray | None = None, heatmap_size: tuple[int, int] | None = None) -> np.ndarray:
        """Heatmap coordinates [N, K, 2] -> image pixels, per person (``heatmap_size`` (H, W): default ours)."""
        return heatmap_to_image(coords, centers, scales, heatmap_size or self.heatmap_size, rotations)

    def decode_to_image(self, heatmaps: np.ndarray | torch.Tensor, centers: np.ndarray, scales: np.ndarray,
                        method: str = DEFAULT_DECODER, rotations: np.ndarray | None = None,
                        blur_kernel: int = DecodeOptions.blur_kernel) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [N, K, 2] in image pixels and scores [N, K], straight from heatmaps."""
        coords, scores = self.decode(heatmaps, method, blur_kernel)
        hw = tuple(int(v) for v in heatmaps.shape[2:4])
        return self.to_image(coords, centers, scales, rotations, hw), scores  # type: ignore[arg-type]

    @staticmethod
    def flip_back(heatmaps: np.ndarray | torch.Tensor, flip_index: list[int] | np.ndarray) -> np.ndarray | torch.Tensor:
        """Heatmaps of a mirrored crop, mirrored back with left/right channels swapped (flip test)."""
        return flip_heatmaps_back(heatmaps, flip_index)
