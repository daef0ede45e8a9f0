"""Persons cut off by the photo's lower edge: the cut, the blanked pixels, the training lever and ``--cut-at``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tpose.data import COCO17, LSP14, AugmentConfig, PersonRecord, TopDownDataset, crop_matrix
from tpose.data.cutoff import CUT_LEVELS, blank_below, cut_record, cut_records, cut_row, torso_rows
from tpose.engine.eval_run import run_eval
from tpose.engine.options import EvalDataSpec, EvalOptions, EvalSettings
from tpose.engine.train_config import TrainingConfig

from .synthetic import write_coco_dataset


def _standing(x0: float = 40.0, y0: float = 20.0, h: float = 200.0) -> np.ndarray:
    """LSP-14 joints of a person standing upright in a box from (x0, y0), ``h`` pixels tall."""
    rows = {"right_ankle": 1.0, "right_knee": 0.75, "right_hip": 0.5, "left_hip": 0.5, "left_knee": 0.75,
            "left_ankle": 1.0, "right_wrist": 0.55, "right_elbow": 0.4, "right_shoulder": 0.2,
            "left_shoulder": 0.2, "left_elbow": 0.4, "left_wrist": 0.55, "neck": 0.15, "head_top": 0.0}
    kpts = np.zeros((14, 3), np.float32)
    for i, name in enumerate(LSP14.names):
        side = -1 if name.startswith("right") else 1 if name.startswith("left") else 0
        kpts[i] = (x0 + 50 + 20 * side, y0 + rows[name] * h, 2)
    return kpts


def _record(kpts: np.ndarray, path: str = "person.jpg") -> PersonRecord:
    lo, hi = kpts[:, :2].min(0), kpts[:, :2].max(0)
    return PersonRecord(path, box=[*lo, *(hi - lo)], keypoints=kpts, image_id=1)


def test_cut_rows_follow_the_torso():
    kpts = _standing()  # shoulders at row 60, hips at 120
    assert torso_rows(kpts, LSP14) == (60.0, 120.0)
    assert cut_row(kpts, LSP14, CUT_LEVELS["chest"]) == pytest.approx(90.0)
    assert cut_row(kpts, LSP14, CUT_LEVELS["hips"]) == pytest.approx(138.0)
    one_side = kpts.copy()
    one_side[LSP14.index("left_shoulder")] = 0  # one labelled shoulder and one hip are enough
    one_side[LSP14.index("right_hip")] = 0
    assert torso_rows(one_side, LSP14) == (60.0, 120.0)


@pytest.mark.parametrize("change", ["no shoulders", "no hips", "upside down"])
def test_no_cut_without_an_upright_torso(change):
    kpts = _standing()
    if change == "no shoulders":
        kpts[[LSP14.index("left_shoulder"), LSP14.index("right_shoulder")]] = 0
    elif change == "no hips":
        kpts[[LSP14.index("left_hip"), LSP14.index("right_hip")]] = 0
    else:
        kpts[:, 1] = 300 - kpts[:, 1]
    assert torso_rows(kpts, LSP14) is None
    assert cut_row(kpts, LSP14, 0.5) is None
    assert cut_records([_record(kpts)], LSP14, 0.5) == []


def test_cut_record_unlabels_below_and_clips_the_box():
    rec = _record(_standing())
    cut = cut_record(rec, 90.0)
    below = rec.keypoints[:, 1] >= 90.0
    assert below.sum() == 10  # hips, knees, ankles, wrists, elbows (row 100)
    assert (cut.keypoints[below] == 0).all()
    np.testing.assert_array_equal(cut.keypoints[~below], rec.keypoints[~below])
    x, y, w, h = cut.box
    assert (x, y, w) == tuple(rec.box[:3]) and y + h == pytest.approx(90.0)
    assert cut.image_bottom == 90.0
    assert rec.image_bottom is None and (rec.keypoints[:, 2] == 2).all()  # the original is left alone


def test_blank_below_follows_a_rotated_crop():
    image = np.full((60, 40, 3), 255, np.uint8)
    angle = np.deg2rad(30)
    to_image = np.array([[np.cos(angle), -np.sin(angle), 10.0], [np.sin(angle), np.cos(angle), 5.0]])
    blank_below(image, 30.0, to_image)
    ys, xs = np.mgrid[0:60, 0:40]
    source_rows = to_image[1, 0] * xs + to_image[1, 1] * ys + to_image[1, 2]
    assert (image[source_rows >= 30.0] == 0).all()
    assert (image[source_rows < 30.0] == 255).all()
    assert 0 < (source_rows >= 30.0).mean() < 1


def test_eval_samples_have_no_pixels_below_the_cut(tmp_path):
    path = tmp_path / "white.png"
    cv2.imwrite(str(path), np.full((240, 140, 3), 255, np.uint8))
    rec = cut_record(_record(_standing(), str(path)), 90.0)
    ds = TopDownDataset([rec], LSP14, (64, 48))
    sample = ds[0]
    image = sample["image"].numpy()
    params = ds.crop_params(0)
    inverse = cv2.invertAffineTransform(crop_matrix(params, (64, 48)))
    ys, xs = np.mgrid[0:64, 0:48]
    rows = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    inside = (rows >= 0) & (rows < 240)
    for channel in image:  # black below the edge, white above it (each channel normalised on its own)
        assert np.allclose(channel[rows >= 91.0], channel.min())
        assert (channel[(rows < 89.0) & inside] > 1.0).all()
    visible_joints = sample["target_weight"].numpy().reshape(-1) > 0
    assert visible_joints.sum() == 4  # head top, neck, shoulders


def _lever_dataset(tmp_path, cutoff_prob: float) -> TopDownDataset:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((240, 140, 3), 200, np.uint8))
    rec = _record(_standing(), str(path))
    return TopDownDataset([rec] * 4, LSP14, (64, 48), train=True, seed=3,
                          augment=AugmentConfig(cutoff_prob=cutoff_prob, rotation_prob=0.0))


def test_the_cutoff_lever_cuts_the_image_and_the_labels(tmp_path):
    ds = _lever_dataset(tmp_path, cutoff_prob=1.0)
    lower = [LSP14.index(n) for n in ("right_ankle", "left_ankle", "right_knee", "left_knee")]
    for i in range(4):
        rng = np.random.default_rng(i)
        cut = ds.sample_cutoff(i, rng)
        assert cut is not None and 60.0 + 0.4 * 60 <= cut.image_bottom <= 60.0 + 1.6 * 60
        sample = ds.get_sample(i, ds.crop_params(i, rng, record=cut), record=cut)
        weight = sample["target_weight"].numpy().reshape(-1)
        assert (weight[lower] == 0).all()  # the knees (row 170) and ankles (220) lie below every cut
        assert (sample["target"].numpy()[lower] == 0).all()
        image = sample["image"].numpy()
        assert image.min() < -1.5 and image.max() > 0.5  # black below the edge, grey above it
        # the crop centres on what is left of the person (above the edge), not on the whole body (row 120)
        params = ds.crop_params(i, np.random.default_rng(i), record=cut)
        assert params.center[1] <= (20.0 + cut.image_bottom) / 2 + 1e-3 < ds.centers[i][1]


def test_without_the_lever_nothing_is_drawn(tmp_path):
    """cutoff_prob 0 (the default) replays exactly the samples of a data set that has no such lever."""
    torch.manual_seed(0)
    off = _lever_dataset(tmp_path, cutoff_prob=0.0)
    plain = TopDownDataset(off.records, LSP14, (64, 48), train=True, seed=3,
                           augment=AugmentConfig(rotation_prob=0.0))
    for i in range(4):
        a, b = off[i], plain[i]
        for key in ("image", "target", "target_weight", "center", "scale"):
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("augment", "words"), [
    ({"cutoff_prob": 1.5}, "augment.cutoff_prob is a probability"),
    ({"half_body_prob": -0.1}, "augment.half_body_prob is a probability"),
    ({"cutoff_levels": [1.4, 0.3]}, "augment.cutoff_levels [1.4, 0.3]: give the lower torso level first"),
])
def test_bad_lever_settings_name_the_key(augment, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        TrainingConfig.model_validate({"augment": augment})


def test_eval_cut_at_scores_the_upper_body(tmp_path, tiny_weights):
    data = write_coco_dataset(tmp_path / "coco", num_images=6)
    spec = dict(ann_file=data["ann_file"], image_dir=data["image_dir"])
    options = EvalOptions(settings=EvalSettings(flip_test=False), metric="pck", progress=False)
    whole = run_eval(tiny_weights, EvalDataSpec("coco", **spec), options)
    chest = run_eval(tiny_weights, EvalDataSpec("coco", cut_at="chest", **spec), options)
    assert "cut" not in whole
    assert chest["cut"] == {"at": "chest", "level": 0.5, "pixels below kept": False, "persons": 6,
                            "not upright or no torso (skipped)": 0}
    assert chest["num_persons"] == 6
    scored = [n for n, v in chest["per_joint_pck"].items() if np.isfinite(v)]
    assert not any(w in n for n in scored for w in ("hip", "knee", "ankle", "wrist"))
    assert {"left_shoulder", "right_shoulder"} <= set(scored)
    assert "photos cut at the chest: 6 of 6 persons" in chest["summary"]
    json.dumps(chest)
    control = run_eval(tiny_weights, EvalDataSpec("coco", cut_at="chest", cut_keep_pixels=True, **spec), options)
    assert control["cut"]["pixels below kept"] and "boxes and joints cut at the chest" in control["summary"]
    assert control["num_persons"] == 6 and control["per_joint_pck"].keys() == chest["per_joint_pck"].keys()
    with pytest.raises(ValueError, match="--cut-keep-pixels is the control of --cut-at"):
        EvalDataSpec("coco", cut_keep_pixels=True, **spec)


def test_eval_cut_at_refuses_what_it_cannot_cut(tmp_path, tiny_weights):
    with pytest.raises(ValueError, match="--cut-at 'knees': use one of chest, hips"):
        EvalDataSpec("coco", cut_at="knees")
    data = write_coco_dataset(tmp_path / "coco", num_images=2)
    ann = json.loads(open(data["ann_file"]).read())
    for a in ann["annotations"]:  # hips unlabelled: no torso to cut along
        k = a["keypoints"]
        for j in (COCO17.index("left_hip"), COCO17.index("right_hip")):
            k[3 * j: 3 * j + 3] = [0, 0, 0]
    open(data["ann_file"], "w").write(json.dumps(ann))
    with pytest.raises(ValueError, match="--cut-at hips: none of the 2 persons has a labelled shoulder and hip"):
        run_eval(tiny_weights, EvalDataSpec("coco", cut_at="hips", **data),
                 EvalOptions(settings=EvalSettings(flip_test=False), metric="pck", progress=False))


def test_cli_cut_at(tmp_path, tiny_weights, capsys):
    from tpose.cli import main

    data = write_coco_dataset(tmp_path / "coco", num_images=3)
    args = ["eval", "--weights", str(tiny_weights), "--data", "coco", "--ann-file", data["ann_file"],
            "--image-dir", data["image_dir"], "--metric", "pck", "--no-flip", "--no-progress", "--limbs"]
    assert main([*args, "--cut-at", "hips", "--report", str(tmp_path / "r.json")]) == 0
    assert "photos cut at the hips: 3 of 3 persons" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["cut"]["at"] == "hips"
    assert main([*args[:-3], "--no-progress", "--cut-at", "hips", "--detector"]) == 2
    assert "--cut-at cuts each annotated person's photo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--cut-at", "knees"])
    assert "invalid choice: 'knees'" in capsys.readouterr().err
