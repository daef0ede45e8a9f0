"""Several data sets in one run: own keypoint sets, mapping by name, masks, weights, splits (issue 18)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from tpose.data import LSP14, MPII16, TopDownDataset
from tpose.data.coco import coco_keypoint_set, load_coco_records
from tpose.data.keypoint_sets import COCO17, KeypointSet
from tpose.data.lsp import load_lsp_records
from tpose.data.mixture import MixtureSampler, build_part, read_image_ids
from tpose.data.records import OCCLUDED, VISIBLE, remap_keypoints
from tpose.engine.losses import masked_mse
from tpose.engine.metrics import pck

from .conftest import LSP, MPII, MPII_ANN, MPII_VAL_SPLIT, needs_lsp, needs_mpii, tiny_model


@needs_lsp
def test_real_lsp_reads_its_own_layout_and_inverse_flag() -> None:
    from scipy.io import loadmat

    raw = loadmat(str(LSP / "joints.mat"))["joints"]  # (3, 14, 2000): x, y, occluded
    records = load_lsp_records(LSP, first=1, last=40)
    assert len(records) == 40 and Path(records[0].image_path).name == "im0001.jpg"
    kpts = np.stack([r.keypoints for r in records])
    np.testing.assert_allclose(kpts[:, :, :2], raw[:2, :, :40].transpose(2, 1, 0), atol=1e-4)
    occluded = raw[2, :, :40].T > 0
    assert occluded.any() and (~occluded).any()
    assert (kpts[:, :, 2][occluded] == OCCLUDED).all() and (kpts[:, :, 2][~occluded] == VISIBLE).all()
    with pytest.raises(ValueError, match="outside 1..2000"):
        load_lsp_records(LSP, first=1999, last=2001)


def test_lsp_box_spans_occluded_joints(tmp_path: Path) -> None:
    import cv2

    joints = np.zeros((3, 14, 1))
    joints[0, :, 0] = np.linspace(10, 60, 14)
    joints[1, :, 0] = np.linspace(20, 90, 14)
    joints[2, 0, 0] = 1  # the right ankle is occluded: labelled, still part of the person's box
    savemat(tmp_path / "joints.mat", {"joints": joints})
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "im0001.jpg"), np.zeros((100, 80, 3), np.uint8))
    (rec,) = load_lsp_records(tmp_path, 1, 1)
    assert rec.keypoints[0, 2] == OCCLUDED and (rec.keypoints[1:, 2] == VISIBLE).all()
    np.testing.assert_allclose(rec.box, [10, 20, 50, 70])


def test_pck_leaves_out_occluded_joints() -> None:
    """What evaluate() passes to pck: visible = v == 2, so an occluded (v = 1) joint never counts."""
    gt = np.zeros((1, 3, 2))
    pred = np.array([[[0.0, 0.0], [100.0, 0.0], [0.0, 0.0]]])
    v = np.array([[VISIBLE, OCCLUDED, VISIBLE]])
    _, mean = pck(pred, gt, v >= VISIBLE, np.array([30.0]))
    assert mean == 1.0  # the far-off occluded joint is ignored


def _coco_file(tmp_path: Path, names: list[str]) -> dict:
    import cv2

    (tmp_path / "img").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "img" / "a.jpg"), np.zeros((64, 48, 3), np.uint8))
    k = len(names)
    kpts = np.concatenate([np.random.default_rng(0).uniform(5, 40, (k, 2)), np.full((k, 1), 2)], axis=1)
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 48, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [2, 2, 40, 55],
                             "area": 2200.0, "keypoints": kpts.reshape(-1).tolist(), "num_keypoints": k}],
            "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return {"ann_file": str(path), "image_dir": str(tmp_path / "img")}


def test_coco_loader_refuses_a_file_whose_keypoints_are_named_otherwise(tmp_path: Path) -> None:
    files = _coco_file(tmp_path, list(reversed(COCO17.names)))  # same count, another order
    with pytest.raises(ValueError, match=r"ann.json: its keypoints are \['right_ankle'.*keypoint set 'coco17'"):
        load_coco_records(files["ann_file"], files["image_dir"], COCO17)
    own = coco_keypoint_set(files["ann_file"])
    assert own.names == tuple(reversed(COCO17.names)) and (0, 1) in own.flip_pairs  # right/left_ankle
    records, _ = load_coco_records(files["ann_file"], files["image_dir"], None)  # read with the file's own set
    assert records[0].keypoints.shape == (17, 3)


@needs_mpii
def test_mpii_file_declares_mpii16_and_maps_onto_lsp_by_name() -> None:
    assert coco_keypoint_set(MPII_ANN) is MPII16
    first_ids = sorted(im["id"] for im in json.loads(MPII_ANN.read_text())["images"])[:20]
    spec = {"type": "coco", "ann_file": str(MPII_ANN), "image_dir": str(MPII / "images"), "name": "mpii",
            "image_ids": first_ids}
    plain = build_part(spec, LSP14)
    mapped = build_part({**spec, "joint_map": {"neck": "upper_neck"}}, LSP14)
    own = build_part(spec)
    assert own.keypoint_set is MPII16 and len(own.records) == len(plain.records) == 20
    neck = LSP14.index("neck")
    assert all(r.keypoints[neck, 2] == 0 for r in plain.records)  # no MPII twin: unlabelled, masked
    for rec_own, rec_mapped in zip(own.records, mapped.records, strict=True):
        np.testing.assert_array_equal(rec_mapped.keypoints[neck], rec_own.keypoints[MPII16.index("upper_neck")])
        for name in LSP14.names[:-2]:  # the 12 limb joints come over unchanged
            np.testing.assert_array_equal(rec_mapped.keypoints[LSP14.index(name)],
                                          rec_own.keypoints[MPII16.index(name)])
    assert "neck" not in plain.labelled_joints and "neck" in mapped.labelled_joints


def test_joint_map_mean_of_several_joints_and_errors() -> None:
    kpts = np.zeros((16, 3), np.float32)
    kpts[MPII16.index("upper_neck")] = [10, 20, 2]
    kpts[MPII16.index("thorax")] = [10, 40, 1]
    out = remap_keypoints(kpts, MPII16, LSP14, joint_map={"neck": ["upper_neck", "thorax"]})
    np.testing.assert_allclose(out[LSP14.index("neck")], [10, 30, 1])  # the mean, flagged as the least visible
    kpts[MPII16.index("thorax"), 2] = 0
    out = remap_keypoints(kpts, MPII16, LSP14, joint_map={"neck": ["upper_neck", "thorax"]})
    np.testing.assert_allclose(out[LSP14.index("neck")], [0, 0, 0])  # one source unlabelled: unlabelled
    with pytest.raises(ValueError, match="'nek'.*not joints of 'lsp14'"):
        remap_keypoints(kpts, MPII16, LSP14, joint_map={"nek": "upper_neck"})
    with pytest.raises(ValueError, match=r"joint_map\['neck'\] reads \['thorx'\]"):
        remap_keypoints(kpts, MPII16, LSP14, joint_map={"neck": "thorx"})


@needs_mpii
def test_mpii_validation_split_is_by_frame_and_never_trained_on() -> None:
    data = json.loads(MPII_ANN.read_text())
    frame = {im["id"]: im["mpii_image"] for im in data["images"]}
    val = read_image_ids(MPII_VAL_SPLIT, "split")
    assert 300 <= len(val) <= 500
    val_frames = {frame[i] for i in val}
    train_frames = {f for i, f in frame.items() if i not in val}
    assert not val_frames & train_frames  # every person of a frame is on one side
    spec = {"type": "coco", "ann_file": str(MPII_ANN), "image_dir": str(MPII / "images"),
            "exclude_image_ids": str(MPII_VAL_SPLIT)}
    train = build_part(spec, LSP14)
    assert not {r.image_id for r in train.records} & val
    assert len(train.records) + len(val) == len(data["annotations"])


def test_image_id_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# header\n3\n5  # five\n\nseven\n")
    with pytest.raises(ValueError, match=r"ids.txt, line 5: 'seven' is not an image id"):
        read_image_ids(path, "x")
    path.write_text("3\n5 # five\n")
    assert read_image_ids(path, "x") == {3, 5}
    with pytest.raises(FileNotFoundError, match="missing.txt not found"):
        read_image_ids(tmp_path / "missing.txt", "data set 'mpii'")


def test_mixture_sampler_draws_each_data_set_by_its_weight() -> None:
    sampler = MixtureSampler([100, 30, 10], [1.0, 2.0, 0.5], seed=3)
    sampler.set_epoch(0)
    first = list(sampler)
    counts = Counter(0 if i < 100 else 1 if i < 130 else 2 for i in first)
    assert counts == {0: 100, 1: 60, 2: 5} and len(first) == len(sampler) == 165
    assert Counter(i for i in first if 100 <= i < 130) == dict.fromkeys(range(100, 130), 2)
    assert list(sampler) == first  # same epoch: same order (a resumed run draws the same)
    sampler.set_epoch(1)
    assert list(sampler) != first
    ranks = [MixtureSampler([100, 30, 10], [1.0, 2.0, 0.5], seed=3, rank=r, world_size=2) for r in (0, 1)]
    parts = [list(s) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == 82
    assert sorted(parts[0] + parts[1]) == sorted(first[:164])
    with pytest.raises(ValueError, match="must be > 0"):
        MixtureSampler([5], [0.0])


def test_a_joint_the_data_set_does_not_label_gets_no_gradient() -> None:
    """A joint with v = 0 has target weight 0: its heatmap channel receives exactly zero gradient."""
    kpset = KeypointSet("three", ("a", "b", "c"))
    model = tiny_model(num_keypoints=3, input_size=(64, 48)).train()
    from tpose.data.records import PersonRecord

    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        kpts = np.concatenate([rng.uniform(10, 40, (3, 2)), np.array([[2], [2], [0]])], axis=1)  # "c" unlabelled
        records.append(PersonRecord(image_path="unused.jpg", box=[5, 5, 40, 50], keypoints=kpts, image_id=i))
    ds = TopDownDataset(records, kpset, (64, 48))
    ds.load_source = lambda index: (np.full((64, 48, 3), 100 + 30 * index, np.uint8), None)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert (batch["target_weight"][:, 2] == 0).all() and (batch["target_weight"][:, :2] == 1).all()
    loss = masked_mse(model(batch["image"]), batch["target"], batch["target_weight"])
    loss.backward()
    grad_w, grad_b = model.final_layer.weight.grad, model.final_layer.bias.grad
    assert grad_w[2].abs().max() == 0 and grad_b[2] == 0
    assert grad_w[0].abs().max() > 0 and grad_w[1].abs().max() > 0
