"""A training run over two data sets with different keypoint sets, weights, two validation sets and
progressive resizing; and the config errors a user meets (issues 18 and 19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpose.data.keypoint_sets import COCO17
from tpose.engine.train import input_size_at, train
from tpose.engine.train_config import ConfigError, load_config, validate_config

from .synthetic import tiny_train_config, write_coco_dataset


def _renamed(files: dict, names: list[str], order: list[int]) -> dict:
    """The same persons, stored in another keypoint order under their own names."""
    path = Path(files["ann_file"])
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        kp = ann["keypoints"]
        ann["keypoints"] = [v for i in order for v in kp[3 * i : 3 * i + 3]]
    data["categories"][0]["keypoints"] = names
    out = path.with_name("renamed.json")
    out.write_text(json.dumps(data))
    return {"ann_file": str(out), "image_dir": files["image_dir"]}


def test_two_data_sets_two_validation_sets_and_progressive_resizing(tmp_path: Path) -> None:
    a = write_coco_dataset(tmp_path / "a", num_images=8, seed=1)
    # B labels only 13 of COCO's joints (no face but the nose), in its own order and with its own names
    keep = [0, *range(5, 17)]
    order = list(reversed(keep))
    b = _renamed(write_coco_dataset(tmp_path / "b", num_images=4, seed=2), [COCO17.names[i] for i in order], order)
    cfg = tiny_train_config(a, tmp_path / "run", epochs=2)
    cfg["data"]["train"] = [{"type": "coco", "name": "a", "exclude_image_ids": [8], **a},
                            {"type": "coco", "name": "b", "weight": 2.0, "exclude_image_ids": [4], **b}]
    cfg["data"]["val"] = [{"type": "coco", "name": "a", "image_ids": [8], **a},
                          {"type": "coco", "name": "b", "image_ids": [4], **b}]
    cfg["train"]["input_sizes"] = [[1, [32, 24]], [2, [64, 48]]]
    result = train(cfg, progress=False)
    first, second = result.history
    assert first["input_size"] == "32x24" and "input_size" not in second  # then the model's own 64x48
    for record in result.history:
        assert 0 <= record["val_PCK@0.2"] <= 1 and 0 <= record["val_b_PCK@0.2"] <= 1
    # 8 persons of A + 2 x 4 of B = 16 draws per epoch, batch 4
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2


def test_config_errors_name_the_key_and_suggest_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.epoch: unknown key 'epoch' in train \(did you mean 'epochs'\?\)"):
        validate_config({"train": {"epoch": 1}})
    with pytest.raises(ConfigError, match=r"train.epohcs: unknown key 'epohcs'.*did you mean 'epochs'"):
        load_config(None, ["train.epohcs=1"])
    with pytest.raises(ConfigError, match=r"train.epochs: expected an integer, got 'ten'"):
        validate_config({"train": {"epochs": "ten"}})
    with pytest.raises(ConfigError, match=r"data.train\[1\].wieght: unknown key 'wieght'.*did you mean 'weight'"):
        validate_config({"data": {"train": [{"type": "lsp", "root": "x"}, {"type": "lsp", "root": "y", "wieght": 2}]}})
    with pytest.raises(ConfigError, match=r"data.train\[0\]: a data set of type 'coco' needs ann_file, image_dir"):
        validate_config({"data": {"train": {"type": "coco"}}})
    with pytest.raises(ConfigError, match=r"augment.flip_prb: unknown key.*did you mean 'flip_prob'"):
        validate_config({"augment": {"flip_prb": 0.5}})
    with pytest.raises(ConfigError, match=r"train.amp: expected one of 'auto', 'off', 'bf16' or 'fp16', got 'bf32'"):
        validate_config({"train": {"amp": "bf32"}})
    with pytest.raises(ConfigError, match=r"model_overrides: unknown key 'input_sz'.*did you mean 'input_size'"):
        validate_config({"model_overrides": {"input_sz": [128, 96]}})
    with pytest.raises(ConfigError, match=r"data.train names \['x'\] more than once"):
        validate_config({"data": {"train": [{"type": "lsp", "root": "a", "name": "x"},
                                            {"type": "lsp", "root": "b", "name": "x"}]}})
    # YAML 1.1 reads 3e-4 as a string: accepted as a number in a file and on the command line
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 3e-4\n  lr_end: 1e-6\nmodel_overrides:\n  dropout: 1e-1\n")
    cfg = load_config(f)
    assert cfg["train"]["lr"] == 3e-4 and cfg["train"]["lr_end"] == 1e-6 and cfg["model_overrides"]["dropout"] == 0.1
    with pytest.raises(ConfigError, match=r"c.yaml with overrides train.epochs=ten: train.epochs: expected an integer"):
        load_config(f, ["train.epochs=ten"])


def test_train_validates_a_dict_it_is_given(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.epoch: unknown key"):
        train({"train": {"epoch": 1}, "output_dir": str(tmp_path)}, progress=False)


def test_input_size_schedule() -> None:
    schedule = [[1, [96, 72]], [4, [128, 96]]]
    assert [input_size_at(schedule, e, (256, 192)) for e in range(5)] == [(96, 72)] * 3 + [(128, 96)] * 2
    assert input_size_at([], 3, (128, 96)) == (128, 96)
    with pytest.raises(ConfigError, match="epochs must increase"):
        validate_config({"train": {"input_sizes": [[3, [96, 72]], [1, [128, 96]]]}})
