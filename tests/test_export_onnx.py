"""ONNX export: the graph's interface, agreement with PyTorch on real images, metadata, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import tpose
from tpose.data.keypoint_sets import LSP14
from tpose.export import (
    ExportCheckError,
    ExportOptions,
    OnnxPoseModel,
    attention_output_name,
    check_export,
    export_onnx,
    run_export,
)
from tpose.models.checkpoint import save_weights

from .conftest import COCO_DET, LSPET, needs_coco_det, needs_lspet, tiny_model

SIZE = (64, 48)


def real_images() -> list[Path]:
    return sorted(COCO_DET.glob("*.jpg")) + [LSPET / "images" / f"im0900{i}.jpg" for i in range(1, 5)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[tpose.TransPose, Path]:
    model = tiny_model(input_size=SIZE)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return model, path


def test_graph_interface_is_image_in_heatmaps_out_with_dynamic_batch(exported) -> None:
    _, path = exported
    proto = onnx.load(str(path))
    assert min(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= 17
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "image" and dims == ["batch", 3, *SIZE]
    assert [o.name for o in proto.graph.output] == ["heatmaps"]
    onnx_model = OnnxPoseModel(path, threads=1)
    for batch in (1, 3):
        out = onnx_model(torch.randn(batch, 3, *SIZE))
        assert out.shape == (batch, 17, SIZE[0] // 4, SIZE[1] // 4)


@needs_coco_det
@needs_lspet
def test_export_matches_pytorch_on_real_images(exported) -> None:
    model, path = exported
    check = check_export(path, model, real_images(), threads=1)
    assert check.crops == len(real_images())
    assert check.max_heatmap_diff < 1e-5
    assert check.max_keypoint_diff_px <= 1e-3
    assert check.passed


@needs_coco_det
@needs_lspet
def test_check_fails_when_the_graph_is_not_the_model(exported) -> None:
    _, path = exported
    other = tiny_model(input_size=SIZE, seed=1)
    check = check_export(path, other, real_images()[:3], threads=1)
    assert not check.passed
    assert check.max_keypoint_diff_px > 1.0


def test_input_size_is_fixed_at_export_and_mismatches_are_explained(tmp_path) -> None:
    model = tiny_model(input_size=SIZE)
    path = export_onnx(model, tmp_path / "big.onnx", input_size=(128, 96))
    onnx_model = OnnxPoseModel(path, threads=1)
    assert onnx_model.input_size == (128, 96)
    x = torch.randn(2, 3, 128, 96)
    with torch.inference_mode():
        ref = model(x)
    assert torch.allclose(onnx_model(x), ref, atol=1e-5)
    with pytest.raises(ValueError, match="exported for 128x96"):
        onnx_model(torch.randn(1, 3, *SIZE))


def test_attention_outputs_match_the_model_per_head_and_averaged(tmp_path) -> None:
    model = tiny_model(input_size=SIZE)
    path = export_onnx(model, tmp_path / "att.onnx", attention=True)
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["heatmaps", attention_output_name(0)]
    onnx_model = OnnxPoseModel(path, threads=1)
    x = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        ref_hm, ref_heads = model(x, return_attention=True, keep_heads=True)
        _, ref_mean = model(x, return_attention=True, keep_heads=False)
    hm, heads = onnx_model(x, return_attention=True, keep_heads=True)
    _, mean = onnx_model(x, return_attention=True)
    assert heads[0].shape == (2, 2, 48, 48)
    assert torch.allclose(hm, ref_hm, atol=1e-5)
    # untrained features give attention logits in the hundreds: their float32 rounding shows at ~1e-4
    assert torch.allclose(heads[0], ref_heads[0], atol=1e-3)
    assert torch.allclose(mean[0], ref_mean[0], atol=1e-3)
    assert not torch.allclose(heads[0][:, 0], heads[0][:, 1], atol=1e-3)  # the heads are not all the same
    plain = OnnxPoseModel(export_onnx(model, tmp_path / "plain.onnx"), threads=1)
    with pytest.raises(ValueError, match="no attention outputs"):
        plain(x, return_attention=True)


def test_metadata_records_keypoint_set_architecture_and_size(tmp_path) -> None:
    model = tiny_model(input_size=SIZE, num_keypoints=14)
    path = export_onnx(model, tmp_path / "lsp.onnx", keypoint_set="lsp14")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    info = json.loads(props["tpose"])
    assert info["input_size"] == list(SIZE) and info["model"]["num_keypoints"] == 14 and info["opset"] == 17
    onnx_model = OnnxPoseModel(path, threads=1)
    assert onnx_model.keypoint_set == LSP14
    assert onnx_model.config is not None and onnx_model.config.d_model == 32
    assert onnx_model.backbone_stride == 8


def test_hrnet_variant_exports_and_matches(tmp_path) -> None:
    torch.manual_seed(0)
    model = tpose.create_model("transpose_h_s", num_layers=1, input_size=SIZE).eval()
    path = export_onnx(model, tmp_path / "h.onnx")
    x = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        ref = model(x)
    got = OnnxPoseModel(path, threads=1)(x)
    assert torch.allclose(got, ref, atol=1e-5 * max(1.0, float(ref.abs().max())))


@needs_coco_det
@needs_lspet
def test_run_export_from_a_weights_file_checks_on_real_images(tmp_path) -> None:
    weights = save_weights(tiny_model(input_size=SIZE, num_keypoints=14), tmp_path / "w.safetensors")
    out = tmp_path / "exported" / "w.onnx"
    summary = run_export(str(weights), out, options=ExportOptions(verify_images=real_images()[:4], attention="mean"))
    assert Path(summary["output"]) == out and out.is_file()
    assert summary["outputs"] == ["heatmaps", "attention_0"]
    assert summary["check"]["passed"] and summary["check"]["crops"] == 4
    assert summary["check"]["max_attention_diff"] < 1e-3
    assert OnnxPoseModel(out, threads=1).keypoint_set.name == "lsp14"
    assert not (tmp_path / "exported" / "w.json").exists()  # nothing written beside it that could clash


def test_run_export_raises_when_the_check_fails(tmp_path, monkeypatch) -> None:
    import tpose.export.onnx_export as mod

    real_check = mod.check_export

    def against_another_model(path, model, *args, **kwargs):
        return real_check(path, tiny_model(input_size=SIZE, seed=3), *args, **kwargs)

    monkeypatch.setattr(mod, "check_export", against_another_model)
    with pytest.raises(ExportCheckError, match="disagrees with PyTorch"):
        run_export(tiny_model(input_size=SIZE), tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").is_file()  # kept for inspection


def test_errors_name_the_problem(tmp_path) -> None:
    model = tiny_model(input_size=SIZE)
    with pytest.raises(ValueError, match="opset must be 17 or newer"):
        export_onnx(model, tmp_path / "a.onnx", opset=13)
    with pytest.raises(ValueError, match="exporter must be one of"):
        export_onnx(model, tmp_path / "a.onnx", exporter="magic")
    with pytest.raises(ValueError, match="attention must be"):
        export_onnx(model, tmp_path / "a.onnx", attention="some")
    with pytest.raises(ValueError, match="multiples of 8"):
        export_onnx(model, tmp_path / "a.onnx", input_size=(60, 48))
    with pytest.raises(ValueError, match="format must be one of"):
        ExportOptions(format="tflite")
    with pytest.raises(ValueError, match="must end in .onnx"):
        run_export(model, tmp_path / "a.pt")
    missing = tmp_path / "missing.onnx"
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxPoseModel(missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="corrupt.onnx"):
        OnnxPoseModel(corrupt)


@needs_coco_det
@needs_lspet
def test_check_images_may_mix_folders_and_files(exported) -> None:
    model, path = exported
    check = check_export(path, model, [str(COCO_DET), LSPET / "images" / "im09001.jpg"], threads=1)
    assert check.crops == len(list(COCO_DET.glob("*.jpg"))) + 1 and check.passed
    with pytest.raises(OSError, match="no_such.jpg"):
        check_export(path, model, [COCO_DET / "no_such.jpg"], threads=1)


def test_default_output_is_named_after_the_weights_in_the_working_folder(tmp_path, monkeypatch) -> None:
    """Never beside the weights: for the shipped ones that is inside the installed package (issue 19)."""
    weights = save_weights(tiny_model(input_size=SIZE), tmp_path / "run" / "best.safetensors")
    monkeypatch.chdir(tmp_path)
    summary = run_export(str(weights), options=ExportOptions(verify=False))
    assert Path(summary["output"]) == tmp_path / "best_64x48.onnx"
    assert summary["check"] is None


def test_check_without_images_uses_the_shipped_real_photo(exported) -> None:
    """No images given: the real photograph shipped for this check, and the report says so (issue 19)."""
    model, path = exported
    a = check_export(path, model, None, threads=1)
    b = check_export(path, model, [], threads=1)  # an option given no values
    assert a.inputs == b.inputs and "real image(s) shipped with tpose" in a.inputs and a.crops == 1
    assert a.max_heatmap_diff == b.max_heatmap_diff
    assert np.isfinite(a.max_keypoint_diff_px)
