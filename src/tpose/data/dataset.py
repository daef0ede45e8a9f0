"""Top-down training/evaluation samples: crop each person, augment, and build Gaussian heatmap targets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..codecs import BOX_PADDING, SIGMA, HeatmapCodec, affine_points, normalize_image
from .crop_cache import CachedCrops, CropCache
from .cutoff import blank_below, cut_record, cut_row
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
        input_size: tuple[int, int] = (256, 192),
        train: bool = False,
        augment: AugmentConfig | None = None,
        sigma: float = SIGMA,
        use_joint_weights: bool = False,
        cache: CropCache | None = None,
        padding: float = BOX_PADDING,
        seed: int | None = None,
    ) -> None:
        self.records = list(records)
        self.keypoint_set = get_keypoint_set(keypoint_set)
        self.codec = HeatmapCodec(tuple(input_size), sigma=float(sigma), padding=float(padding))
        self.aspect_ratio = self.codec.aspect_ratio
        self.train = bool(train)
        self.augment = (augment or AugmentConfig()) if self.train else None
        self.use_joint_weights = bool(use_joint_weights)
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
            self.crops = cache.open(self.records, self.centers, self.scales, self.input_size)
            if len(self.crops) != len(self.records):
                raise ValueError(f"crop cache {self.crops.directory} has {len(self.crops)} entries for "
                                 f"{len(self.records)} records")
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple | None = None

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the crops."""
        return self.codec.input_size

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(H, W) of the targets."""
        return self.codec.heatmap_size

    @property
    def sigma(self) -> float:
        return self.codec.sigma

    @property
    def padding(self) -> float:
        return self.codec.padding

    def set_input_size(self, input_size: tuple[int, int]) -> None:
        """Crop at another (H, W) from now on (progressive resizing); the aspect ratio must stay the same."""
        codec = HeatmapCodec(tuple(input_size), self.codec.stride, self.codec.sigma, self.codec.padding)
        if abs(codec.aspect_ratio - self.aspect_ratio) > 1e-6:
            raise ValueError(f"input size {codec.input_size} has another aspect ratio than the data set's "
                             f"{self.input_size}")
        self.codec = codec

    def _centers_scales(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.records)
        centers = np.zeros((n, 2), dtype=np.float32)
        scales = np.zeros((n, 2), dtype=np.float32)
        for i, rec in enumerate(self.records):
            if not np.isfinite(rec.box).all():
                raise ValueError(f"record {i} {rec.describe()} has a non-finite box {rec.box.tolist()}")
            centers[i], scales[i] = self._center_scale(rec)
        return centers, scales

    def _center_scale(self, record: PersonRecord) -> tuple[np.ndarray, np.ndarray]:
        """The crop centre and scale of ``record``'s box; a degenerate box still needs a valid crop, so one
        pixel is the smallest extent."""
        x, y, bw, bh = (float(v) for v in record.box)
        return self.codec.box_to_center_scale((x, y, max(bw, 1.0), max(bh, 1.0)))

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

    def crop_params(
        self, index: int, rng: np.random.Generator | None = None, record: PersonRecord | None = None
    ) -> CropParams:
        """The crop of sample ``index``: the box's own in eval mode, a random augmentation in training.

        ``record`` (e.g. the sample cut off by ``sample_cutoff``) replaces the stored record's box and joints.
        """
        if record is None:
            center, scale, kpts = self.centers[index], self.scales[index], self.records[index].keypoints
        else:
            (center, scale), kpts = self._center_scale(record), record.keypoints
        if self.augment is None:
            return CropParams(center=np.array(center, dtype=np.float32), scale=np.array(scale, dtype=np.float32))
        return sample_crop_params(
            rng if rng is not None else self.rng(),
            center,
            scale,
            kpts,
            self.lower_mask,
            self.aspect_ratio,
            self.augment,
        )

    def sample_cutoff(self, index: int, rng: np.random.Generator | None = None) -> PersonRecord | None:
        """Sample ``index`` as if its photo ended at a random torso level (``augment.cutoff_prob``), else None.

        Nothing is drawn when the probability is 0, so runs without the lever replay exactly as before.
        """
        aug = self.augment
        if aug is None or aug.cutoff_prob <= 0:
            return None
        rng = rng if rng is not None else self.rng()
        if rng.random() >= aug.cutoff_prob:
            return None
        rec = self.records[index]
        row = cut_row(rec.keypoints, self.keypoint_set, rng.uniform(*aug.cutoff_levels))
        if row is None:
            return None
        cut = cut_record(rec, row)
        return cut if int((cut.keypoints[:, 2] > 0).sum()) >= 2 else None

    def pixel_params(self, rng: np.random.Generator | None = None) -> PixelParams | None:
        """Photometric augmentation of one training crop (None in eval mode)."""
        if self.augment is None:
            return None
        return sample_pixel_params(rng if rng is not None else self.rng(), self.augment)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.sample_cutoff(index)
        return self.get_sample(index, self.crop_params(index, record=record), self.pixel_params(), record=record)

    def load_source(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Pixels to crop from and the matrix from original image coordinates into them (None: the image itself)."""
        if self.crops is not None:
            return self.crops.get(index)
        return read_image(self.records[index].image_path), None

    def get_sample(
        self, index: int, params: CropParams, pixels: PixelParams | None = None, record: PersonRecord | None = None
    ) -> dict[str, torch.Tensor]:
        """Sample ``index`` cropped with ``params`` and changed by ``pixels`` (deterministic given both);
        ``record`` replaces the stored one (same image), e.g. a cut-off copy of it."""
        rec = record if record is not None else self.records[index]
        h, w = self.input_size
        source, to_source = self.load_source(index)
        matrix = crop_matrix(params, (h, w))
        warp = matrix if to_source is None else compose(matrix, cv2.invertAffineTransform(to_source))
        image = cv2.warpAffine(source, warp, (w, h), flags=cv2.INTER_LINEAR)
        if rec.image_bottom is not None:  # the photo ends there: no pixels below
            blank_below(image, rec.image_bottom, cv2.invertAffineTransform(matrix))
        if pixels is not None:
            image = apply_pixel_params(image, pixels)

        kpts = rec.keypoints
        visible = kpts[:, 2].copy()
        heat_xy = affine_points(kpts[:, :2], crop_matrix(params, self.heatmap_size))
        if params.flip:
            heat_xy = heat_xy[self.flip_index]
            visible = visible[self.flip_index]
        target, weight = self.codec.encode(heat_xy, visible)
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

