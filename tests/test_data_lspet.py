from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from tpose.data.lspet import load_lspet_joints, load_lspet_records, tight_box

from .conftest import LSPET, needs_lspet


@needs_lspet
def test_real_lspet_records() -> None:
    joints = load_lspet_joints(LSPET)
    assert joints.shape == (10000, 14, 3)
    records = load_lspet_records(LSPET, first=1, last=5)
    assert [r.image_id for r in records] == [1, 2, 3, 4, 5]
    assert Path(records[0].image_path).name == "im00001.jpg"
    rec = records[0]
    assert rec.keypoints.shape == (14, 3)
    # im00001's right ankle is unlabelled (placeholder coordinates), kept with v = 0; visible joints are v = 2
    assert rec.keypoints[0, 2] == 0 and rec.keypoints[1, 2] == 2
    np.testing.assert_allclose(rec.keypoints[:, :2], joints[0, :, :2], rtol=0, atol=1e-4)
    vis = rec.keypoints[rec.keypoints[:, 2] > 0, :2]
    x, y, w, h = rec.box
    assert x == pytest.approx(vis[:, 0].min()) and x + w == pytest.approx(vis[:, 0].max())
    assert y == pytest.approx(vis[:, 1].min()) and y + h == pytest.approx(vis[:, 1].max())


@needs_lspet
def test_validation_range() -> None:
    records = load_lspet_records(LSPET, first=9001, last=9003)
    assert [Path(r.image_path).name for r in records] == ["im09001.jpg", "im09002.jpg", "im09003.jpg"]
    with pytest.raises(ValueError, match="outside"):
        load_lspet_records(LSPET, first=9999, last=10001)


@pytest.mark.parametrize("layout", ["14x3xN", "Nx14x3", "3x14xN"])
def test_joints_layouts(tmp_path: Path, layout: str) -> None:
    joints = np.random.default_rng(0).uniform(0, 50, size=(4, 14, 3))
    stored = {"14x3xN": joints.transpose(1, 2, 0), "Nx14x3": joints, "3x14xN": joints.transpose(2, 1, 0)}[layout]
    savemat(tmp_path / "joints.mat", {"joints": stored})
    np.testing.assert_allclose(load_lspet_joints(tmp_path), joints)


def test_bad_joints_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="joints.mat"):
        load_lspet_joints(tmp_path)
    savemat(tmp_path / "joints.mat", {"joints": np.zeros((5, 7, 2))})
    with pytest.raises(ValueError, match="shape"):
        load_lspet_joints(tmp_path)


def test_tight_box_ignores_unlabelled_and_outside_joints() -> None:
    kpts = np.array([[10, 20, 1], [30, 60, 1], [-5, 40, 1], [500, 500, 0]], dtype=np.float32)
    np.testing.assert_allclose(tight_box(kpts, width=100, height=100), [10, 20, 20, 40])
