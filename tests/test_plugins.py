"""A backbone and a decoding method defined outside tpose, registered through the public API, are used like the
built-in ones (issue 23): the backbone builds, trains, predicts, exports to ONNX and is explained; the decoding
method is used by name by the predictor, by evaluation (the training run's validation) and by the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tpose
from tpose.cli import build_parser
from tpose.engine.train import train
from tpose.engine.train_config import ConfigError, validate_config
from tpose.explain.attention import run_attention
from tpose.export.onnx_export import export_onnx
from tpose.models.imagenet_init import init_backbone_from_imagenet
from tpose.models.onnx_model import OnnxPoseModel

from .synthetic import tiny_train_config, write_coco_dataset

SIZE = (64, 48)  # (H, W)


@tpose.register_backbone("toy", head="deconv")
class ToyBackbone(nn.Module):
    """Two strided convolutions: stride 8, 24 channels (what the README's example registers)."""

    stride = 8
    out_channels = 24
    size_multiple = 8

    def __init__(self) -> None:
        super().__init__()
        self.toy_stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.toy_body = nn.Sequential(nn.Conv2d(16, 24, 3, stride=4, padding=1), nn.BatchNorm2d(24), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.toy_body(self.toy_stem(x))


CENTRE_CALLS: list[int] = []


@tpose.register_decoder("centre")
def decode_centre(heatmaps: np.ndarray, options: tpose.codecs.DecodeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Every keypoint at the heatmap's centre, scored by the heatmap's maximum (easy to recognise downstream)."""
    CENTRE_CALLS.append(heatmaps.shape[0])
    n, k, h, w = heatmaps.shape
    coords = np.broadcast_to(np.array([(w - 1) / 2, (h - 1) / 2]), (n, k, 2))
    return coords, heatmaps.reshape(n, k, -1).max(axis=2)


def _toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return tpose.create_model("transpose_r_a4", backbone="toy", num_layers=1, d_model=32, num_heads=2,
                              dim_feedforward=64, input_size=SIZE).eval()


def test_registered_names_are_listed() -> None:
    assert {"resnet_s", "resnet_s_star", "hrnet_s_w32", "hrnet_s_w48", "toy"} <= set(tpose.list_backbones())
    assert {"dark", "argmax", "centre"} <= set(tpose.list_decoders())


def test_toy_backbone_builds_with_its_registered_head_and_flat_keys() -> None:
    model = _toy_model()
    assert model.config.backbone == "toy" and model.config.head == "deconv"
    assert model.backbone_stride == 8 and model.reduce.in_channels == 24
    keys = list(model.state_dict())
    assert "toy_stem.0.weight" in keys and "toy_body.1.running_mean" in keys
    assert not any(k.startswith(("backbone.", "_backbone.")) for k in keys)
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        heatmaps, maps = model(x, return_attention=True)
    assert heatmaps.shape == (2, 17, 16, 12) and maps[0].shape == (2, 48, 48)  # 8x6 tokens
    # the backbone object called outside the module tree runs the model's own modules
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), model.reduce(model.toy_body(model.toy_stem(x))))


def test_train_and_eval_modes_reach_the_backbone_object() -> None:
    model = _toy_model()
    assert not model._backbone.training and not model.toy_stem[1].training
    model.train()
    assert model._backbone.training and model.toy_stem[1].training


def test_toy_backbone_trains_predicts_and_evaluates_with_the_toy_decoder(tmp_path: Path) -> None:
    data = write_coco_dataset(tmp_path / "data", num_images=4, seed=3)
    cfg = tiny_train_config(data, tmp_path / "run", epochs=1)
    cfg["model"] = "transpose_r_a4"
    cfg["model_overrides"] = {**cfg["model_overrides"], "backbone": "toy"}
    cfg["eval"].update({"decode": "centre", "flip_test": False})
    calls = len(CENTRE_CALLS)
    result = train(cfg, progress=False)
    assert result.epochs_done == 1 and 0 <= result.history[0]["val_PCK@0.2"] <= 1
    assert len(CENTRE_CALLS) > calls  # the validation decoded with the registered method
    weights = tmp_path / "run" / "best.safetensors"
    loaded = tpose.load_model(weights)
    assert loaded.config.backbone == "toy"

    predictor = tpose.PosePredictor(weights, decode="centre", flip_test=False, detector=None)
    box = (10.0, 20.0, 60.0, 80.0)  # aspect 0.75 = 48/64: the crop is the box padded by 1.25 about its centre
    (person,) = predictor.predict(np.zeros((120, 100, 3), np.uint8), [box], [0.9])
    xy = np.asarray(person.keypoints)[:, :2]
    # the heatmap centre (5.5, 7.5) of 12x16 maps to the box centre moved by half a heatmap pixel (3.33 px)
    half = 60 * 1.25 / 12 / 2
    np.testing.assert_allclose(xy, np.tile([10 + 29.5 - half, 20 + 39.5 - half], (17, 1)), atol=1e-3)


def test_toy_backbone_exports_to_onnx_and_is_explained(tmp_path: Path) -> None:
    model = _toy_model(seed=1)
    path = export_onnx(model, tmp_path / "toy.onnx", attention=True)
    onnx_model = OnnxPoseModel(path, threads=1)
    assert onnx_model.config is not None and onnx_model.config.backbone == "toy" and onnx_model.backbone_stride == 8
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        ref, ref_maps = model(x, return_attention=True)
    got, got_maps = onnx_model(x, return_attention=True)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(got_maps[0], ref_maps[0], atol=1e-5, rtol=1e-3)
    for net in (model, onnx_model):
        explained = run_attention(net, x[:1])
        assert explained.grid_hw == (8, 6) and explained.attention.shape == (1, 2, 48, 48)
        np.testing.assert_allclose(explained.attention.sum(-1), 1.0, atol=1e-4)


def test_the_toy_decoder_is_a_choice_of_the_cli_and_the_training_config() -> None:
    args = build_parser().parse_args(["predict", "image.jpg", "--decode", "centre"])
    assert args.decode == "centre"
    assert validate_config({"eval": {"decode": "centre"}})["eval"]["decode"] == "centre"
    with pytest.raises(ConfigError, match="unknown decoding method 'soft'"):
        validate_config({"eval": {"decode": "soft"}})
    with pytest.raises(ValueError, match="unknown decoding method 'soft'"):
        tpose.PosePredictor(_toy_model(), decode="soft", detector=None)


def test_registration_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="already registered"):
        tpose.register_backbone("toy", head="deconv")(ToyBackbone)
    with pytest.raises(ValueError, match="already registered"):
        tpose.register_decoder("centre")(decode_centre)
    with pytest.raises(ValueError, match="head must be one of"):
        tpose.register_backbone("toy_bad_head", head="upsample")  # type: ignore[arg-type]
    # a stride-8 backbone cannot feed the 1x1 head (heatmaps are at stride 4)
    tpose.register_backbone("toy_wrong_head", head="conv1x1", replace=True)(ToyBackbone)
    with pytest.raises(ValueError, match="a 'conv1x1' head needs stride 4"):
        tpose.create_model("transpose_h_s", backbone="toy_wrong_head", num_layers=1)

    class NoContract(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)

    tpose.register_backbone("toy_no_contract", head="deconv", replace=True)(NoContract)
    with pytest.raises(TypeError, match="needs a positive int attribute 'stride'"):
        tpose.create_model("transpose_r_a4", backbone="toy_no_contract", num_layers=1)
    with pytest.raises(ValueError, match="backbone must be one of"):
        tpose.create_model("transpose_r_a4", backbone="toy_unregistered")
    with pytest.raises(ValueError, match="registered without imagenet_init"):
        init_backbone_from_imagenet(_toy_model(), {"conv1.weight": torch.zeros(1)})
