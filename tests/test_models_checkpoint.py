"""Loading and saving weights: round trips, wrappers, and mismatch errors that say what would fit."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch

import tpose
from tpose.models.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_model,
    load_weights,
    read_metadata,
    save_released_layout,
    save_weights,
)

from .conftest import TINY, tiny_model


@cache
def released(name: str, **overrides) -> dict[str, torch.Tensor]:
    """A state dict with a registered variant's exact layout (random weights)."""
    return tpose.create_model(name, **overrides).state_dict()


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = tiny_model(pos_embedding="learnable", num_keypoints=14)
    path = save_weights(model, tmp_path / "run" / "best.safetensors", {"epoch": 7, "keypoint_set": "lsp14"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.json", "best.safetensors"]  # no temp files left
    meta = json.loads((tmp_path / "run" / "best.json").read_text())
    assert meta["model"] == model.config.to_dict()
    assert meta["keypoint_set"] == "lsp14" and meta["epoch"] == 7 and meta["variant"] == "transpose_r_a3"
    assert meta["overrides"] == {**TINY, "pos_embedding": "learnable", "num_keypoints": 14}
    assert read_metadata(path) == meta

    again = load_model(path).eval()
    assert again.config == model.config
    assert again.metadata["epoch"] == 7
    _same_state(model, again)
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), atol=0, rtol=0)


def test_half_precision_storage_loads_back_as_float32(tmp_path: Path) -> None:
    model = tiny_model(num_keypoints=14)
    path = save_weights(model, tmp_path / "w.safetensors", storage_dtype=torch.float16)
    assert (tmp_path / "w.safetensors").stat().st_size < 0.6 * (save_weights(model, tmp_path / "f.safetensors")
                                                                  .stat().st_size)
    assert read_metadata(path)["storage_dtype"] == "float16"
    again = load_model(path)
    for k, v in model.state_dict().items():
        got = again.state_dict()[k]
        assert got.dtype == v.dtype, k  # float32 parameters, int64 counters
        assert torch.equal(got, v.half().to(v.dtype) if v.is_floating_point() else v), k
    with pytest.raises(ValueError, match="floating-point"):
        save_weights(model, tmp_path / "bad.safetensors", storage_dtype=torch.int8)


def test_metadata_survives_without_the_json(tmp_path: Path) -> None:
    model = tiny_model()
    path = save_weights(model, tmp_path / "w.safetensors")
    path.with_suffix(".json").unlink()
    assert load_model(path).config == model.config


def test_files_from_before_the_input_size_rename_still_load(tmp_path: Path) -> None:
    """tpose wrote the input size as ``image_size`` until 2026-12-03: users' weights of then load as they were."""
    from safetensors.torch import load_file, save_file

    model = tiny_model(input_size=(64, 48))
    path = save_weights(model, tmp_path / "w.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["model"]["image_size"] = meta["model"].pop("input_size")
    old = json.dumps(meta)
    save_file(load_file(str(path)), str(path), metadata={"tpose": old})
    path.with_suffix(".json").write_text(old)
    again = load_model(path)
    assert again.config == model.config and again.config.input_size == (64, 48)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_variant_and_keypoint_set_recorded(tmp_path: Path) -> None:
    model = tpose.create_model("transpose_r_a3")
    meta = json.loads(save_weights(model, tmp_path / "r.safetensors").with_suffix(".json").read_text())
    assert meta["variant"] == "transpose_r_a3" and meta["keypoint_set"] == "coco17"


def test_save_weights_rejects_bad_arguments(tmp_path: Path) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_weights(model, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="JSON"):
        save_weights(model, tmp_path / "w.safetensors", {"when": object()})
    with pytest.raises(ValueError, match="'model'"):
        save_weights(model, tmp_path / "w.safetensors", {"model": {}})
    assert list(tmp_path.iterdir()) == []


def test_released_layout_is_a_plain_state_dict(tmp_path: Path) -> None:
    model = tpose.create_model("transpose_r_a3").eval()
    path = save_released_layout(model, tmp_path / "tp_r_256x192_enc3_d256_h1024_mh8.pth")
    state = torch.load(path, weights_only=True)
    assert list(state) == list(model.state_dict())
    # and it rebuilds without metadata, the variant read off the weights
    again = load_model(path)
    assert again.metadata["variant"] == "transpose_r_a3"
    assert again.config == model.config
    _same_state(model, again)


def test_custom_pth_without_metadata_asks_for_num_heads(tmp_path: Path) -> None:
    path = save_released_layout(tiny_model(), tmp_path / "custom.pth")
    with pytest.raises(CheckpointError, match="num_heads"):
        load_model(path)
    model = tpose.create_model("transpose_r_a3", weights=path, **TINY)
    _same_state(model, tiny_model())


def test_wrappers_and_ddp_prefix(tmp_path: Path) -> None:
    source = tiny_model(seed=1)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "best": 0.7}
    torch.save(wrapped, tmp_path / "train.pth")
    model = tiny_model(seed=2)
    report = load_weights(model, tmp_path / "train.pth")
    assert report.complete and len(report.loaded) == len(source.state_dict())
    _same_state(model, source)
    model = tiny_model(seed=3)
    load_weights(model, {"model": source.state_dict()})
    _same_state(model, source)


def test_not_a_state_dict_names_the_entries(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "weights": tiny_model().state_dict()}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"odd\.pth.*'epoch', 'weights'"):
        load_weights(tiny_model(), tmp_path / "odd.pth")


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_weights(tiny_model(), tmp_path / "nothing.pth")
    (tmp_path / "broken.pth").write_bytes(b"\x80\x02garbage" * 10)
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_weights(tiny_model(), tmp_path / "broken.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_weights(tiny_model(), tmp_path / "broken.safetensors")


def test_other_variant_names_keys_and_guess() -> None:
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(tpose.create_model("transpose_r_a3"), released("transpose_r_a4"))
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "unexpected keys (12)" in message and "global_encoder.layers.3" in message
    assert "missing keys" not in message
    assert "looks like a transpose_r_a4 checkpoint" in message
    assert err.value.unexpected[0].startswith("global_encoder.layers.3.")


def test_very_different_variant_is_abbreviated() -> None:
    model = tpose.create_model("transpose_r_a3")
    before = model.conv1.weight.clone()
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(model, released("transpose_h_a6"))
    message = str(err.value)
    assert "missing keys (84)" in message and "unexpected keys" in message and "shape mismatches" in message
    assert "stage3.* (" in message and "... and" in message
    assert "looks like a transpose_h_a6 checkpoint" in message
    assert len(message) < 3000 and len(err.value.unexpected) > 800
    assert torch.equal(model.conv1.weight, before)  # nothing was loaded


def test_same_backbone_other_width_lists_shapes() -> None:
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(tpose.create_model("transpose_h_s"), released("transpose_h_a4"))
    message = str(err.value)
    assert "transition1.0.0.weight: checkpoint (48, 256, 3, 3) vs model (32, 256, 3, 3)" in message
    assert "looks like a transpose_h_a4 checkpoint" in message


def test_other_keypoint_count_is_guessed_and_strict_false_skips_head() -> None:
    source = tpose.create_model("transpose_r_a4", num_keypoints=14)
    with pytest.raises(CheckpointMismatchError, match=r"transpose_r_a4 checkpoint with num_keypoints=14"):
        load_weights(tpose.create_model("transpose_r_a4"), source.state_dict())
    model = tpose.create_model("transpose_r_a4")
    report = load_weights(model, source.state_dict(), strict=False)
    assert [k for k, _, _ in report.mismatched] == ["final_layer.weight", "final_layer.bias"]
    assert torch.equal(model.reduce.weight, source.reduce.weight)
    assert "final_layer.weight" not in report.loaded and len(report.loaded) == len(model.state_dict()) - 2
    assert model.final_layer.weight.shape[0] == 17


def test_imagenet_classifier_is_pointed_to_imagenet_init() -> None:
    fake = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "layer4.0.conv1.weight": torch.zeros(512, 1024, 1, 1),
        "fc.weight": torch.zeros(1000, 2048),
    }
    with pytest.raises(CheckpointMismatchError, match="init_backbone_from_imagenet"):
        load_weights(tiny_model(), fake)


def test_saved_config_is_named_in_the_error(tmp_path: Path) -> None:
    path = save_weights(tiny_model(num_layers=2), tmp_path / "two.safetensors")
    with pytest.raises(CheckpointMismatchError, match=r"saved from transpose_r_a3 with .*num_layers=2"):
        load_weights(tiny_model(), path)


def test_learnable_256x192_checkpoint_into_other_size(tmp_path: Path) -> None:
    source = tiny_model(pos_embedding="learnable", input_size=(256, 192))
    save_released_layout(source, tmp_path / "learned.pth")
    save_weights(source, tmp_path / "learned.safetensors")
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        expect = source(x)
    for file in ("learned.pth", "learned.safetensors"):
        model = tpose.create_model(
            "transpose_r_a3", weights=tmp_path / file, **TINY, pos_embedding="learnable", input_size=(384, 288)
        ).eval()
        assert model.config.input_size == (256, 192), file
        assert model.pos_embedding.requires_grad
        with torch.no_grad():
            torch.testing.assert_close(model(x), expect, atol=1e-5, rtol=0)


def test_pos_embedding_kind_mismatch_is_reported() -> None:
    with pytest.raises(CheckpointMismatchError, match="missing keys \\(1\\): pos_embedding"):
        load_weights(tiny_model(), tiny_model(pos_embedding="none").state_dict())


def test_failed_load_leaves_the_model_untouched() -> None:
    source = tiny_model(num_keypoints=14, input_size=(256, 192)).state_dict()
    model = tiny_model(input_size=(384, 288))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="num_keypoints=14"):
        load_weights(model, source)
    assert model.config.input_size == (384, 288)
    assert list(model.state_dict()) == list(before)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # with strict=False it adopts the trained grid and loads all but the head
    report = load_weights(model, source, strict=False)
    assert report.trained_input_size == (256, 192) and model.config.input_size == (256, 192)
    assert torch.equal(model.pos_embedding, source["pos_embedding"])
