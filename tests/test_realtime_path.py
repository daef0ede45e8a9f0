"""The real-time path picks its precision by itself: bf16 where the CPU has native bf16, else the int8 model
that ships beside the weights (only when its recorded weights hash matches), else fp32; explanations keep
the fp32 attention. A tiny model and a tiny "int8" companion (an fp32 export carrying the hash) stand in
for the shipped files, so this runs in seconds without ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tpose.inference.predictor as predictor_module
from tpose.export.onnx_export import export_onnx, set_metadata_props
from tpose.inference import PosePredictor
from tpose.inference.options import PredictOptions
from tpose.models.checkpoint import save_weights
from tpose.weights.download import sha256_of
from tpose.weights.int8 import (
    WEIGHTS_HASH_KEY,
    Int8MismatchError,
    find_int8,
    int8_path,
    read_int8_metadata,
)

from .conftest import tiny_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def weights_with_int8(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny weights and, beside them, ``<stem>_int8.onnx`` whose metadata records the weights' SHA-256."""
    model = tiny_model("transpose_r_a3", num_keypoints=14, input_size=(64, 48))
    folder = tmp_path_factory.mktemp("rt")
    weights = save_weights(model, folder / "tiny.safetensors", extra_metadata={"keypoint_set": "lsp14"})
    companion = export_onnx(model, int8_path(weights), keypoint_set="lsp14")
    info = read_int8_metadata(companion)
    info.update({"precision": "int8", WEIGHTS_HASH_KEY: sha256_of(weights)})
    set_metadata_props(companion, {"tpose": json.dumps(info)})
    return Path(weights), companion


def _bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(predictor_module, "native_bf16", lambda device="cpu": native)


def test_the_int8_file_is_found_beside_safetensors_only(weights_with_int8) -> None:
    weights, companion = weights_with_int8
    assert find_int8(weights) == companion
    assert find_int8(companion) is None and find_int8(None) is None
    assert find_int8(weights.with_name("other.safetensors")) is None


def test_realtime_takes_bf16_where_native_for_weights_without_an_int8_model(tmp_path, monkeypatch) -> None:
    _bf16(monkeypatch, True)
    weights = save_weights(tiny_model("transpose_r_a3", num_keypoints=14, input_size=(64, 48)),
                           tmp_path / "alone.safetensors", extra_metadata={"keypoint_set": "lsp14"})
    p = PosePredictor(weights, flip_test=False, precision="realtime", detector=None)
    assert p.precision == "bf16" and p.backend == "torch"
    assert "bf16" in p.precision_note and "--flip --precision fp32" in p.precision_note


@pytest.mark.parametrize("native", [False, True])
def test_realtime_takes_the_shipped_int8_model(weights_with_int8, monkeypatch, native: bool) -> None:
    _bf16(monkeypatch, native)  # measured faster than bf16 too, where the CPU has native bf16
    weights, companion = weights_with_int8
    p = PosePredictor(weights, flip_test=False, precision="realtime", detector=None)
    assert p.precision == "int8" and p.backend == "onnxruntime" and p.loaded.weights == str(companion)
    assert "int8" in p.precision_note and "--flip --precision fp32" in p.precision_note
    fp32 = PosePredictor(weights, flip_test=False, precision="fp32", detector=None)
    image = np.random.default_rng(0).integers(0, 255, (96, 72, 3), dtype=np.uint8)
    a, b = p.predict(image)[0], fp32.predict(image)[0]
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-2)  # the stand-in is the same fp32 graph


def test_explanations_use_the_fp32_attention_when_int8_runs(weights_with_int8, monkeypatch) -> None:
    _bf16(monkeypatch, False)
    weights, _ = weights_with_int8
    p = PosePredictor(weights, flip_test=False, precision="int8", detector=None)
    crops = torch.randn(2, 3, 64, 48)
    heatmaps, maps = p.forward_crops(crops, return_attention=True)
    ref = PosePredictor(weights, flip_test=False, precision="fp32", detector=None)
    ref_heatmaps, ref_maps = ref.forward_crops(crops, return_attention=True)
    np.testing.assert_allclose(heatmaps, ref_heatmaps, rtol=1e-3, atol=1e-5)
    assert len(maps) == len(ref_maps)  # the int8 file has no attention outputs: these are the fp32 model's
    for got, want in zip(maps, ref_maps, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)


def test_weights_without_an_int8_model_stay_fp32_and_refuse_int8(tmp_path, monkeypatch) -> None:
    _bf16(monkeypatch, False)
    weights = save_weights(tiny_model("transpose_r_a3", num_keypoints=14, input_size=(64, 48)),
                           tmp_path / "alone.safetensors", extra_metadata={"keypoint_set": "lsp14"})
    p = PosePredictor(weights, flip_test=False, precision="realtime", detector=None)
    assert p.precision == "fp32" and p.backend == "torch" and "fp32" in p.precision_note
    with pytest.raises(ValueError, match="tpose export --int8"):
        PosePredictor(weights, precision="int8", detector=None)


def test_an_int8_model_of_other_weights_is_refused(weights_with_int8, tmp_path, monkeypatch) -> None:
    _bf16(monkeypatch, False)
    weights, companion = weights_with_int8
    changed = save_weights(tiny_model("transpose_r_a3", seed=1, num_keypoints=14, input_size=(64, 48)),
                           tmp_path / weights.name, extra_metadata={"keypoint_set": "lsp14"})
    int8_path(changed).write_bytes(companion.read_bytes())  # the old int8 model beside new weights
    with pytest.raises(Int8MismatchError, match="build_shipped_int8"):
        PosePredictor(changed, flip_test=False, precision="realtime", detector=None)


def test_videos_ask_for_the_realtime_path_and_photos_for_fp32() -> None:
    assert PredictOptions().for_source(real_time=True).precision == "realtime"
    assert PredictOptions().for_source(real_time=False).precision == "fp32"
    assert PredictOptions(precision="int8").for_source(real_time=False).precision == "int8"


def test_predict_on_a_video_says_which_path_runs(weights_with_int8, tmp_path, capsys, monkeypatch) -> None:
    import cv2

    from tpose.inference.options import DetectorOptions
    from tpose.inference.predict_job import run_predict

    _bf16(monkeypatch, False)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (48, 64))
    for i in range(3):
        writer.write(np.full((64, 48, 3), 40 * i, np.uint8))
    writer.release()
    options = PredictOptions(detector=DetectorOptions(None), progress=False)
    summary = run_predict(video, tmp_path / "out", weights=weights_with_int8[0], options=options)
    err = capsys.readouterr().err
    assert "real-time path: the shipped int8 model" in err and "--flip --precision fp32" in err
    assert summary["precision"] == "int8"
