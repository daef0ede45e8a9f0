"""Starting weights of another keypoint set load by joint name (issue 24), and files name their variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tpose.data.keypoint_sets import COCO17, LSP14
from tpose.engine.train import train
from tpose.models.checkpoint import CheckpointMismatchError, load_weights, read_metadata, save_weights

from .conftest import tiny_model
from .synthetic import tiny_train_config, write_coco_dataset

HEAD = ("final_layer.weight", "final_layer.bias")


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory) -> Path:
    """Random COCO-17 weights of the tiny R-A3, trained (as far as its metadata says) at 64x48."""
    model = tiny_model(seed=5, input_size=(64, 48))
    return save_weights(model, tmp_path_factory.mktemp("coco") / "coco.safetensors", keypoint_set=COCO17)


def test_shared_joints_copy_mapped_joints_average_the_rest_start_fresh(coco_file) -> None:
    source = {k: v for k, v in tiny_model(seed=5, input_size=(64, 48)).state_dict().items()}
    model = tiny_model(seed=9, num_keypoints=14)
    before = {k: model.state_dict()[k].clone() for k in HEAD}
    report = load_weights(model, coco_file, keypoint_set="lsp14",
                          joint_map={"neck": ["left_shoulder", "right_shoulder"]})
    state = model.state_dict()
    for key in HEAD:
        src, got = source[key], state[key]
        for i, name in enumerate(LSP14.names):
            if name in COCO17.names:
                assert torch.equal(got[i], src[COCO17.index(name)]), (key, name)
        neck = (src[COCO17.index("left_shoulder")] + src[COCO17.index("right_shoulder")]) / 2
        torch.testing.assert_close(got[LSP14.index("neck")], neck)
        top = got[LSP14.index("head_top")]
        assert torch.equal(top, before[key][LSP14.index("head_top")])  # its initial channel, kept
        if key == "final_layer.weight":  # (biases start at zero on both sides)
            assert not any(torch.equal(top, row) for row in src)
    for key, value in source.items():  # every other tensor loads as is (the sine table is the model's own size)
        if key not in (*HEAD, "pos_embedding"):
            assert torch.equal(state[key], value), key
    assert report.joint_sets == ("coco17", "lsp14")
    assert len(report.copied) == 12 and report.mapped == {"neck": ["left_shoulder", "right_shoulder"]}
    assert report.fresh == ["head_top"]
    text = report.summary()
    assert "coco17 -> lsp14" in text and "neck <- mean(left_shoulder, right_shoulder)" in text
    assert "joints starting fresh (1): head_top" in text


def test_another_input_size_loads_and_the_model_keeps_its_own(coco_file) -> None:
    model = tiny_model(num_keypoints=14, input_size=(128, 96))
    report = load_weights(model, coco_file, keypoint_set="lsp14")
    assert model.config.input_size == (128, 96)
    assert any("position table" in note for note in report.notes)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96)).shape == (1, 14, 32, 24)


def test_a_learned_position_table_is_resized_to_the_model_grid(tmp_path) -> None:
    path = save_weights(tiny_model(pos_embedding="learnable", input_size=(64, 48)), tmp_path / "l.safetensors")
    model = tiny_model(pos_embedding="learnable", num_keypoints=14, input_size=(128, 96))
    report = load_weights(model, path, keypoint_set="lsp14")
    assert model.pos_embedding.shape[0] == 16 * 12 and model.config.input_size == (128, 96)
    assert "resized from a 8x6 grid to 16x12" in report.summary()


def test_a_file_without_final_layer_loads_every_joint_fresh(tmp_path) -> None:
    state = {k: v for k, v in tiny_model(seed=3).state_dict().items() if k not in HEAD}
    model = tiny_model(num_keypoints=14)
    report = load_weights(model, state, keypoint_set="lsp14")
    assert report.fresh == list(LSP14.names) and not report.copied
    assert torch.equal(model.state_dict()["reduce.weight"], state["reduce.weight"])


def test_another_architecture_is_the_clear_error(coco_file) -> None:
    model = tiny_model(num_keypoints=14, num_layers=2)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(\d+\): global_encoder.layers.1") as info:
        load_weights(model, coco_file, keypoint_set="lsp14")
    assert "saved from transpose_r_a3 with" in str(info.value)
    with pytest.raises(ValueError, match="joint_map names \\['chin'\\] are not joints of 'lsp14'"):
        load_weights(tiny_model(num_keypoints=14), coco_file, keypoint_set="lsp14", joint_map={"chin": "nose"})


def test_files_record_variant_and_overrides_and_the_diagnosis_names_them(tmp_path) -> None:
    saved = tiny_model("transpose_r_a3", num_keypoints=14, input_size=(128, 96))
    path = save_weights(saved, tmp_path / "r_a3.safetensors")
    meta = read_metadata(path)
    assert meta["variant"] == "transpose_r_a3"
    assert meta["overrides"] == {"d_model": 32, "num_layers": 1, "num_heads": 2, "dim_feedforward": 64,
                                 "num_keypoints": 14, "input_size": [128, 96]}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(tiny_model("transpose_h_s"), path)
    message = str(info.value)
    assert "saved from transpose_r_a3 with d_model=32" in message and "transpose_h_s checkpoint" not in message
    assert 'tpose.create_model("transpose_r_a3", weights=..., d_model=32' in message


def test_init_weights_of_another_keypoint_set_print_where_each_joint_came_from(tmp_path, capsys) -> None:
    lsp = save_weights(tiny_model(num_keypoints=14, input_size=(128, 96)), tmp_path / "lsp.safetensors",
                       keypoint_set=LSP14)
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    cfg = tiny_train_config(data, tmp_path / "run", epochs=1, max_steps_per_epoch=1)
    cfg["init"] = {"weights": str(lsp), "joint_map": {"nose": "head_top"}}
    result = train(cfg, progress=False)
    assert result.epochs_done == 1
    out = capsys.readouterr().out
    first = out.splitlines()[:5]
    assert first[0].startswith(f"weights {lsp}: ") and "keypoints lsp14 -> coco17" in first[0]
    assert any(line.strip().startswith("joints copied by name (12): left_shoulder") for line in first)
    assert any("nose <- head_top" in line for line in first)
    assert any("joints starting fresh (4): left_eye, right_eye, left_ear, right_ear" in line for line in first)
    assert json.loads((tmp_path / "run" / "last.json").read_text())["variant"] == "transpose_r_a3"
