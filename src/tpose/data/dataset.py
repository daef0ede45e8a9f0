"""Top-down training/evaluation samples: crop each person, augment, and build Gaussian heatmap targets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..codecs.heatmap import encode_gaussian
from .affine import affine_points, box_to_center_scale
from .crop_cache import CachedCrops, CropCache
from .image_io import read_image
from .keypoint_sets import KeypointSet, get_keypoint_set
from .records import PersonRecord
from .transforms import (
    AugmentConfig,
    CropParams,
    PixelParams,
    apply_pixel_params,
    compose,
    crop_matrix,
    lower_body_mask,
    normalize_image,
    sample_crop_params,
    sample_pixel_params,
)


class TopDownDataset(Dataset):
    """Samples as dicts of tensors (see the project conventions); geometry is always in original image coordinates.

    ``train`` turns on the augmentation of ``augment`` (the released recipe by default). Each DataLoader
    worker draws from its own ``np.random.Generator`` seeded from torch's worker seed, so workers differ
    and runs repeat under ``torch.manual_seed``. ``cache`` serves pre-cropped regions instead of full images.
    """

    def __init__(
        self,
        records: Sequence[PersonRecord],
        keypoint_set: KeypointSet | str,
        image_size: tuple[int, int] = (256, 192),
        train: bool = False,
        augment: AugmentConfig | None = None,
        sigma: float = 2.0,
        use_joint_weights: bool = False,
        cache: CropCache | None = None,
        padding: float = 1.25,
        seed: int | None = None,
    ) -> None:
        self.records = list(records)
        self.keypoint_set = get_keypoint_set(keypoint_set)
        self.set_image_size(image_size)
        self.aspect_ratio = self.image_size[1] / self.image_size[0]
        self.train = bool(train)
        self.augment = (augment or AugmentConfig()) if self.train else None
        self.sigma = float(sigma)
        self.use_joint_weights = bool(use_joint_weights)
        self.padding = float(padding)
        self.seed = seed
        k = self.keypoint_set.num_keypoints
        for i, rec in enumerate(self.records):
            if rec.num_keypoints != k:
                raise ValueError(
                    f"record {i} {rec.describe()} has {rec.num_keypoints} keypoints but keypoint set "
                    f"{self.keypoint_set.name!r} has {k}"
                )
        self.centers, self.scales = self._centers_scales()
        self.lower_mask = lower_body_mask(self.keypoint_set)
        self.flip_index = np.array(self.keypoint_set.flip_index(), dtype=np.int64)
        self.joint_weights = np.array(self.keypoint_set.joint_weights, dtype=np.float32)
        self.crops: CachedCrops | None = None
        if cache is not None:
            self.crops = cache.open(self.records, self.centers, self.scales, self.image_size)
            if len(self.crops) != len(self.records):
                raise ValueError(f"crop cache {self.crops.directory} has {len(self.crops)} entries for "
                                 f"{len(self.records)} records")
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple | None = None

    def set_image_size(self, image_size: tuple[int, int]) -> None:
        """Crop at another (H, W) from now on (progressive resizing); the aspect ratio must stay the same."""
        h, w = (int(image_size[0]), int(image_size[1]))
        if h % 4 or w % 4 or h <= 0 or w <= 0:
            raise ValueError(f"image_size {(h, w)} must be positive and divisible by 4 (heatmaps are 1/4 of the input)")
        ratio = getattr(self, "aspect_ratio", None)
        if ratio is not None and abs(w / h - ratio) > 1e-6:
            raise ValueError(f"image_size {(h, w)} has another aspect ratio than the data set's {self.image_size}")
        self.image_size = (h, w)
        self.heatmap_size = (h // 4, w // 4)

    def _centers_scales(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.records)
        centers = np.zeros((n, 2), dtype=np.float32)
        scales = np.zeros((n, 2), dtype=np.float32)
        for i, rec in enumerate(self.records):
            x, y, bw, bh = (float(v) for v in rec.box)
            if not np.isfinite([x, y, bw, bh]).all():
                raise ValueError(f"record {i} {rec.describe()} has a non-finite box {rec.box.tolist()}")
            # a degenerate box still needs a valid crop; one pixel is the smallest extent
            centers[i], scales[i] = box_to_center_scale((x, y, max(bw, 1.0), max(bh, 1.0)), self.aspect_ratio,
                                                        self.padding)
        return centers, scales

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_rng"], state["_rng_key"] = None, None
        return state

    def rng(self) -> np.random.Generator:
        """This process's generator: per DataLoader worker (torch's worker seed), else ``seed`` or torch's seed."""
        info = get_worker_info()
        key = (os.getpid(), info.seed if info is not None else None)
        if self._rng is None or self._rng_key != key:
            if info is not None:
                # no cv2.setNumThreads here: after a fork it deadlocks once the parent has used OpenCV
                entropy = [info.seed, self.seed or 0]
            else:
                entropy = [self.seed if self.seed is not None else torch.initial_seed()]
            self._rng = np.random.default_rng(entropy)
            self._rng_key = key
        return self._rng

    def crop_params(self, index: int, rng: np.random.Generator | None = None) -> CropParams:
        """The crop of sample ``index``: the box's own in eval mode, a random augmentation in training."""
        center, scale = self.centers[index], self.scales[index]
        if self.augment is None:
            return CropParams(center=center.copy(), scale=scale.copy())
        return sample_crop_params(
            rng if rng is not None else self.rng(),
            center,
            scale,
            self.records[index].keypoints,
            self.lower_mask,
            self.aspect_ratio,
            self.augment,
        )

    def pixel_params(self, rng: np.random.Generator | None = None) -> PixelParams | None:
        """Photometric augmentation of one training crop (None in eval mode)."""
        if self.augment is None:
            return None
        return sample_pixel_params(rng if rng is not None else self.rng(), self.augment)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.get_sample(index, self.crop_params(index), self.pixel_params())

    def load_source(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Pixels to crop from and the matrix from original image coordinates into them (None: the image itself)."""
        if self.crops is not None:
            return self.crops.get(index)
        return read_image(self.records[index].image_path), None

    def get_sample(self, index: int, params: CropParams, pixels: PixelParams | None = None) -> dict[str, torch.Tensor]:
        """Sample ``index`` cropped with ``params`` and changed by ``pixels`` (deterministic given both)."""
        rec = self.records[index]
        h, w = self.image_size
        hh, hw = self.heatmap_size
        source, to_source = self.load_source(index)
        matrix = crop_matrix(params, (w, h))
        warp = matrix if to_source is None else compose(matrix, cv2.invertAffineTransform(to_source))
        image = cv2.warpAffine(source, warp, (w, h), flags=cv2.INTER_LINEAR)
        if pixels is not None:
            image = apply_pixel_params(image, pixels)

        kpts = rec.keypoints
        visible = kpts[:, 2].copy()
        heat_xy = affine_points(kpts[:, :2], crop_matrix(params, (hw, hh)))
        if params.flip:
            heat_xy = heat_xy[self.flip_index]
            visible = visible[self.flip_index]
        target, weight = encode_gaussian(heat_xy, visible, (hw, hh), self.sigma)
        if self.use_joint_weights:
            weight = weight * self.joint_weights
        return {
            "image": torch.from_numpy(normalize_image(image)),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight.astype(np.float32)),
            "center": torch.from_numpy(np.asarray(params.center, dtype=np.float32)),
            "scale": torch.from_numpy(np.asarray(params.scale, dtype=np.float32)),
            "rotation": torch.tensor(float(params.rotation), dtype=torch.float32),
            "keypoints": torch.from_numpy(kpts.astype(np.float32, copy=True)),
            "box": torch.from_numpy(rec.box.astype(np.float32, copy=True)),
            "box_score": torch.tensor(rec.score, dtype=torch.float32),
            "image_id": torch.tensor(rec.image_id, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }

