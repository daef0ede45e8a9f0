"""Options for small data (issue 24): ``train.freeze`` keeps a part fixed for the first epochs, resumed runs
included, and ``train.pretrained_lr_scale`` slows only what ``init.weights`` loaded."""

from __future__ import annotations

import pytest
import torch

from tpose.data.keypoint_sets import COCO17, LSP14, get_keypoint_set
from tpose.engine.state import load_training_state
from tpose.engine.train import frozen_part, param_groups, train
from tpose.engine.train_config import ConfigError, load_config
from tpose.models.checkpoint import load_weights, save_released_layout, save_weights
from tpose.models.variants import build_model

from .synthetic import TINY, tiny_train_config, write_coco_dataset


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory) -> dict:
    return write_coco_dataset(tmp_path_factory.mktemp("coco"), num_images=8)


@pytest.fixture(scope="module")
def start_weights(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    """A tiny model's weights for MPII's 16 joints, to fine-tune onto the data's COCO-17 (some joints fresh)."""
    torch.manual_seed(5)
    model = build_model("transpose_r_a3", **TINY, input_size=[64, 48], num_keypoints=16)
    path = tmp_path_factory.mktemp("w") / "start.safetensors"
    save_weights(model, path, keypoint_set=get_keypoint_set("mpii16"))
    return str(path), {k: v.clone() for k, v in model.state_dict().items()}


def _state(run_dir) -> dict:
    return load_training_state(run_dir / "last.ckpt")


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> set[str]:
    """The float tensors under ``prefixes`` whose values differ (BatchNorm running statistics included)."""
    return {k for k, v in before.items() if k.startswith(prefixes) and v.is_floating_point()
            and not torch.equal(v, after[k].to(v.dtype))}


@pytest.mark.parametrize("part", ["backbone", "all_but_head"])
def test_frozen_part_stays_fixed_during_freeze_epochs_then_trains_after_resume(coco_data, start_weights, tmp_path,
                                                                              part):
    path, init = start_weights
    run = tmp_path / "run"
    common = {"max_steps_per_epoch": 2, "freeze": {"part": part, "epochs": 1}, "pretrained_lr_scale": 0.1}
    cfg = tiny_train_config(coco_data, run, epochs=1, **common)
    cfg["init"]["weights"] = path
    train(cfg, progress=False)
    after_freeze = _state(run)["model"]
    model = build_model("transpose_r_a3", **TINY, input_size=[64, 48], num_keypoints=17)
    frozen = tuple(f"{name}." for name, _ in frozen_part(model, part))
    assert _changed(init, after_freeze, frozen) == set()  # weights and BatchNorm statistics alike
    assert _changed(init, after_freeze, ("final_layer.",))  # the rest learned meanwhile
    if part == "backbone":
        assert _changed(init, after_freeze, ("global_encoder.",))
    # the same run continued to 3 epochs: the freeze follows the epoch, so the part trains now
    cfg["train"]["epochs"] = 3
    result = train(cfg, progress=False)
    assert result.epochs_done == 3
    after = _state(run)["model"]
    released = _changed(after_freeze, after, frozen)
    assert any(".weight" in k for k in released) and any("running_mean" in k for k in released)


def test_each_group_learns_at_its_rate(coco_data, start_weights, tmp_path):
    path, _ = start_weights
    cfg = tiny_train_config(coco_data, tmp_path / "run", epochs=1, max_steps_per_epoch=2, pretrained_lr_scale=0.25,
                            schedule="constant")
    cfg["init"]["weights"] = path
    train(cfg, progress=False)
    groups = {g["name"]: g for g in _state(tmp_path / "run")["optimizer"]["param_groups"]}
    assert groups["fresh"]["lr"] == pytest.approx(1e-3)
    assert groups["pretrained"]["lr"] == pytest.approx(0.25e-3)
    assert groups["pretrained"]["lr_scale"] == 0.25


def test_param_groups_put_the_final_layer_and_unloaded_tensors_at_full_rate():
    model = build_model("transpose_r_a3", **TINY, input_size=[64, 48], num_keypoints=4)
    names = [n for n, p in model.named_parameters() if p.requires_grad]  # a sine position table is fixed
    pretrained = {n for n in names if not n.startswith(("final_layer", "deconv"))}
    groups = {g["name"]: g for g in param_groups(model, pretrained, 0.1)}
    by_id = {id(p): n for n, p in model.named_parameters()}
    assert {by_id[id(p)] for p in groups["pretrained"]["params"]} == pretrained
    assert {by_id[id(p)] for p in groups["fresh"]["params"]} == set(names) - pretrained
    assert groups["pretrained"]["lr_scale"] == 0.1 and groups["fresh"]["lr_scale"] == 1.0
    # nothing pretrained (a run from scratch): one group, as before these options
    assert [g["name"] for g in param_groups(model, set(), 0.1)] == ["fresh"]


@pytest.mark.parametrize("overrides, message", [
    (["init.weights=w.safetensors", "train.epochs=2", "train.freeze.epochs=3"],
     "freeze.epochs (3) is more than epochs (2)"),
    (["init.weights=w.safetensors", "train.pretrained_lr_scale=0"], "train.pretrained_lr_scale: must be greater"),
    (["init.weights=w.safetensors", "train.pretrained_lr_scale=2"], "train.pretrained_lr_scale: must be less"),
    (["init.weights=w.safetensors", "train.freeze.part=head"], "train.freeze.part: expected one of"),
    (["init.weights=w.safetensors", "train.freeze.epoch=1"], "did you mean 'epochs'"),
    (["train.freeze.epochs=1"], "only make sense for pretrained weights"),
    (["train.pretrained_lr_scale=0.1"], "only make sense for pretrained weights"),
])
def test_config_rejects_what_cannot_work(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, overrides)


def test_config_accepts_and_defaults():
    assert load_config(None)["train"]["freeze"] == {"part": "backbone", "epochs": 0}
    assert load_config(None)["train"]["pretrained_lr_scale"] == 1.0
    cfg = load_config(None, ["init.weights=w.safetensors", "train.freeze.part=all_but_head", "train.freeze.epochs=2",
                             "train.pretrained_lr_scale=0.1"])
    assert cfg["train"]["freeze"] == {"part": "all_but_head", "epochs": 2}


def test_released_coco_layout_fine_tunes_onto_lsp14(tmp_path):
    """The path of ``weights=True`` (the released COCO-17 .pth of R-A4 at 256x192, no metadata) onto LSP-14 at
    128x96, with random weights in the released layout: the mechanism, not the accuracy."""
    torch.manual_seed(3)
    released = build_model("transpose_r_a4", num_keypoints=17, input_size=[256, 192])
    path = save_released_layout(released, tmp_path / "tp_r_256x192_enc4_d256_h1024_mh8.pth")
    cfg = load_config(None, ["model_overrides.input_size=[128,96]", "keypoint_set=lsp14", f"init.weights={path}",
                             "init.joint_map.neck=[left_shoulder,right_shoulder]", "train.freeze.epochs=1",
                             "train.pretrained_lr_scale=0.1"])
    model = build_model("transpose_r_a4", num_keypoints=14, input_size=[128, 96])
    report = load_weights(model, cfg["init"]["weights"], keypoint_set="lsp14", joint_map=cfg["init"]["joint_map"])
    assert report.joint_sets == ("coco17", "lsp14") and report.fresh == ["head_top"]
    assert report.mapped == {"neck": ["left_shoulder", "right_shoulder"]} and len(report.copied) == 12
    groups = {g["name"]: g for g in param_groups(model, set(report.loaded), cfg["train"]["pretrained_lr_scale"])}
    fresh = {n for n, p in model.named_parameters() if any(p is q for q in groups["fresh"]["params"])}
    assert fresh == {"final_layer.weight", "final_layer.bias"}  # everything else came from the file
    wrist = LSP14.index("left_wrist")
    assert torch.equal(model.state_dict()["final_layer.weight"][wrist],
                       released.state_dict()["final_layer.weight"][COCO17.index("left_wrist")])
