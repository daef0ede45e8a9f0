"""No silent nonsense in training (issue 26, point 3): a validation set that shares images with the training set
is refused, and so is an LSPET- or LSP-layout file with no joint to score. Through the command line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from tpose.cli import main

from .synthetic import tiny_train_config, write_coco_dataset


def _train(capsys, cfg: dict, tmp_path: Path) -> tuple[int, str]:
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    code = main(["train", str(config), "--device", "cpu", "--no-progress"])
    return code, capsys.readouterr().err


def test_a_validation_set_equal_to_the_training_set_is_refused(tmp_path, capsys) -> None:
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    cfg = tiny_train_config(data, tmp_path / "run", epochs=1)
    cfg["data"]["train"] = [{"type": "coco", "name": "people", **data}]
    cfg["data"]["val"] = [{"type": "coco", "name": "people-val", **data}]
    code, err = _train(capsys, cfg, tmp_path)
    assert code == 2
    assert "validation set 'people-val' shares 4 of its 4 images with training set(s) 'people' (4)" in err
    assert "first/last" in err and "exclude_image_ids" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_validation_set_that_overlaps_in_part_names_the_count(tmp_path, capsys) -> None:
    a = write_coco_dataset(tmp_path / "a", num_images=6, seed=1)
    b = write_coco_dataset(tmp_path / "b", num_images=4, seed=2)
    cfg = tiny_train_config(a, tmp_path / "run", epochs=1)
    cfg["data"]["train"] = [{"type": "coco", "name": "a", "exclude_image_ids": [5, 6], **a},
                            {"type": "coco", "name": "b", **b}]
    cfg["data"]["val"] = [{"type": "coco", "name": "a-val", "image_ids": [4, 5, 6], **a}]
    code, err = _train(capsys, cfg, tmp_path)
    assert code == 2 and "'a-val' shares 1 of its 3 images with training set(s) 'a' (1)" in err
    assert "000000000004.jpg" in err


def _leeds_root(root: Path, joints: np.ndarray, digits: int) -> Path:
    from scipy.io import savemat

    (root / "images").mkdir(parents=True)
    for number in range(1, joints.shape[-1] + 1):
        cv2.imwrite(str(root / "images" / f"im{number:0{digits}d}.jpg"), np.full((80, 60, 3), 90, np.uint8))
    savemat(str(root / "joints.mat"), {"joints": joints})
    return root


def _leeds_config(tmp_path: Path, spec: dict) -> dict:
    val = write_coco_dataset(tmp_path / "coco", num_images=2)
    cfg = tiny_train_config(val, tmp_path / "run", epochs=1)
    cfg["keypoint_set"] = "lsp14"
    cfg["data"]["train"] = [spec]
    cfg["data"]["val"] = []
    return cfg


def test_an_lspet_file_with_every_joint_invisible_is_refused(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(5, 50, (14, 2, 6)), np.zeros((14, 1, 6))], axis=1)  # (14, 3, N)
    root = _leeds_root(tmp_path / "lspet", joints, 5)
    code, err = _train(capsys, _leeds_config(tmp_path, {"type": "lspet", "root": str(root), "first": 1, "last": 6}),
                       tmp_path)
    assert code == 2 and "every joint of images 1..6 is marked invisible" in err and "type: lsp" in err
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_an_lsp_file_with_every_joint_flagged_occluded_is_refused(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(5, 50, (2, 14, 5)), np.ones((1, 14, 5))], axis=0)  # (3, 14, N)
    root = _leeds_root(tmp_path / "lsp", joints, 4)
    code, err = _train(capsys, _leeds_config(tmp_path, {"type": "lsp", "root": str(root), "first": 1, "last": 5}),
                       tmp_path)
    assert code == 2 and "every joint of images 1..5 is flagged occluded" in err and "use type: lspet" in err
