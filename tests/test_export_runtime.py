"""ONNX Runtime behind the torch model's call: the predictor and the explanations run on an exported file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import tpose
from tpose.explain.attention import run_attention
from tpose.export import OnnxPoseModel, export_onnx, session_options
from tpose.inference.predictor import PosePredictor

from .conftest import COCO_DET, needs_coco_det, tiny_model

SIZE = (64, 48)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[tpose.TransPose, Path, Path]:
    model = tiny_model(num_layers=2, input_size=SIZE)
    folder = tmp_path_factory.mktemp("rt")
    return model, export_onnx(model, folder / "plain.onnx"), export_onnx(model, folder / "att.onnx", attention=True)


@needs_coco_det
def test_predictor_gives_the_same_keypoints_with_onnx_as_with_torch(files) -> None:
    model, plain, _ = files
    image = sorted(COCO_DET.glob("*.jpg"))[0]
    boxes = [[50.0, 40.0, 200.0, 300.0], [10.0, 10.0, 120.0, 180.0]]
    want = PosePredictor(model, flip_test=True, detector=None).predict(image, boxes)
    for predictor in (PosePredictor(str(plain), backend="onnx", detector=None),
                      PosePredictor(OnnxPoseModel(plain, threads=1), detector=None)):
        assert predictor.input_size == SIZE and predictor.keypoint_set.name == "coco17"
        got = predictor.predict(image, boxes)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            # whole-image-scale boxes on a 16x12 heatmap: 1 heatmap px is ~17 image px here
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_explanations_run_on_an_export_with_attention(files) -> None:
    model, _, att = files
    crop = torch.randn(3, *SIZE)
    want = run_attention(model, crop)
    got = run_attention(OnnxPoseModel(att, threads=1), crop)
    assert got.grid_hw == want.grid_hw == (8, 6)
    assert got.attention.shape == want.attention.shape == (2, 2, 48, 48)
    np.testing.assert_allclose(got.heatmaps, want.heatmaps, atol=1e-5)
    np.testing.assert_allclose(got.attention, want.attention, atol=1e-3)


def test_module_calls_that_do_not_apply_change_nothing(files) -> None:
    _, plain, _ = files
    m = OnnxPoseModel(plain, threads=1)
    assert m.to("cpu").eval() is m and m.train() is m
    assert next(m.parameters()).numel() == 0
    assert "plain.onnx" in repr(m)
    with pytest.raises(ValueError, match=r"expects a tensor \[B, 3, H, W\]"):
        m(torch.randn(3, *SIZE))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_a_file_exported_elsewhere_is_read_off_its_shapes(tmp_path) -> None:
    model = tiny_model(num_layers=2, input_size=SIZE, num_keypoints=14)
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, *SIZE),), str(path), dynamo=False, opset_version=17)
    m = OnnxPoseModel(path, threads=1)
    assert m.input_size == SIZE and m.num_keypoints == 14 and m.config is None
    assert m.keypoint_set.name == "lsp14" and m.attention is None
    assert m(torch.zeros(1, 3, *SIZE)).shape == (1, 14, 16, 12)


def test_session_options() -> None:
    opts = session_options(threads=3, optimization="extended")
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(spinning=True).get_session_config_entry("session.intra_op.allow_spinning") == "1"
    with pytest.raises(ValueError, match="optimization must be one of"):
        session_options(optimization="max")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        session_options(threads=0)


def test_cuda_without_the_gpu_build_says_what_to_install(files) -> None:
    _, plain, _ = files
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        OnnxPoseModel(plain, device="cuda")
