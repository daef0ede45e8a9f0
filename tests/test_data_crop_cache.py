from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tpose.data import CropCache, CropParams, PersonRecord, TopDownDataset
from tpose.data.crop_cache import CachedCrops
from tpose.data.keypoint_sets import LSP14
from tpose.data.lspet import load_lspet_records

from .conftest import LSPET, needs_lspet


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 255, size=(height // 16, width // 16, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def make_records(tmp_path: Path, n: int = 3) -> list[PersonRecord]:
    records = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), smooth_image(400, 320, i))
        kpts = np.zeros((14, 3), dtype=np.float32)
        kpts[:, 0] = np.linspace(110, 190 + 10 * i, 14)
        kpts[:, 1] = np.linspace(90, 310, 14)
        kpts[:, 2] = 1
        records.append(PersonRecord(str(path), box=[110, 90, 80 + 10 * i, 220], keypoints=kpts, image_id=i))
    return records


def crop_params(ds: TopDownDataset) -> list[tuple[int, CropParams]]:
    rng = np.random.default_rng(5)
    out = [(i, ds.crop_params(i)) for i in range(len(ds))]
    for i in range(len(ds)):
        c, s = ds.centers[i], ds.scales[i]
        out += [
            (i, CropParams(c, s * 1.35, rotation=90.0, flip=True)),
            (i, CropParams(c, s * 0.65, rotation=-37.0)),
            (i, ds.crop_params(i, rng)),
        ]
    return out


def image_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return float(((a - b) * std * 255).abs().mean())


# raw at full resolution must reproduce the uncached crop; JPEG and down-scaled caches come close
@pytest.mark.parametrize(
    ("storage", "max_side", "tolerance"),
    [("raw", 2000, 0.05), ("jpeg", 2000, 2.5), ("jpeg", None, 2.5), ("jpeg", 160, 8.0)],
)
def test_cached_crop_matches_uncached(tmp_path: Path, storage: str, max_side: int | None, tolerance: float) -> None:
    records = make_records(tmp_path)
    cache = CropCache(tmp_path / "cache", max_side=max_side, storage=storage, progress=False)
    plain = TopDownDataset(records, LSP14, input_size=(128, 96), train=True)
    cached = TopDownDataset(records, LSP14, input_size=(128, 96), train=True, cache=cache)
    for i, params in crop_params(plain):
        a, b = plain.get_sample(i, params), cached.get_sample(i, params)
        for key in ("target", "target_weight", "center", "scale", "rotation", "keypoints", "box"):
            assert torch.equal(a[key], b[key]), key
        assert image_diff(a["image"], b["image"]) < tolerance


def test_cache_is_reused_and_keyed_by_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = make_records(tmp_path, n=2)
    cache = CropCache(tmp_path / "cache", progress=False)
    TopDownDataset(records, LSP14, input_size=(64, 48), cache=cache)
    assert len(list((tmp_path / "cache").iterdir())) == 1

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(CropCache, "_build", no_build)
    ds = TopDownDataset(records, LSP14, input_size=(64, 48), cache=cache)
    assert len(ds.crops) == 2
    with pytest.raises(AssertionError, match="rebuilt"):  # another output size -> another cache
        TopDownDataset(records, LSP14, input_size=(128, 96), cache=cache)
    with pytest.raises(AssertionError, match="rebuilt"):  # other records -> another cache
        TopDownDataset(records[:1], LSP14, input_size=(64, 48), cache=cache)


def test_pool_build_equals_serial_and_is_picklable(tmp_path: Path) -> None:
    import pickle

    records = make_records(tmp_path, n=4)
    serial = TopDownDataset(records, LSP14, (64, 48), cache=CropCache(tmp_path / "a", progress=False))
    pooled = TopDownDataset(records, LSP14, (64, 48), cache=CropCache(tmp_path / "b", workers=2, progress=False))
    assert serial.crops is not None and pooled.crops is not None
    for i in range(4):
        a, ma = serial.crops.get(i)
        b, mb = pooled.crops.get(i)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)
    clone = pickle.loads(pickle.dumps(pooled))
    assert torch.equal(clone[2]["image"], pooled[2]["image"])


def test_truncated_cache_is_reported(tmp_path: Path) -> None:
    records = make_records(tmp_path, n=1)
    ds = TopDownDataset(records, LSP14, (64, 48), cache=CropCache(tmp_path / "cache", progress=False))
    data = ds.crops.directory / "data.bin"
    data.write_bytes(data.read_bytes()[:-10])
    with pytest.raises(ValueError, match="incomplete"):
        CachedCrops(ds.crops.directory)


def test_region_outside_the_image(tmp_path: Path) -> None:
    records = make_records(tmp_path, n=1)
    rec = records[0]
    far = PersonRecord(rec.image_path, box=[900, -700, 50, 50], keypoints=rec.keypoints, image_id=9)
    plain = TopDownDataset([far], LSP14, (64, 48))
    cached = TopDownDataset([far], LSP14, (64, 48), cache=CropCache(tmp_path / "cache", progress=False))
    assert image_diff(plain[0]["image"], cached[0]["image"]) < 1.0


@needs_lspet
def test_real_lspet_cache(tmp_path: Path) -> None:
    records = load_lspet_records(LSPET, first=1, last=8)
    plain = TopDownDataset(records, LSP14, input_size=(128, 96), train=True)
    cached = TopDownDataset(records, LSP14, input_size=(128, 96), train=True,
                            cache=CropCache(tmp_path / "cache", progress=False))
    for i, params in crop_params(plain):
        a, b = plain.get_sample(i, params), cached.get_sample(i, params)
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["target_weight"], b["target_weight"])
        assert image_diff(a["image"], b["image"]) < 3.0
