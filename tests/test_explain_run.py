"""``run_explain`` end to end on real images from ../shared/data with a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpose.data.image_io import read_image
from tpose.explain import ExplainOptions, run_explain
from tpose.explain.attention import crop_person, crop_to_token, run_attention, shown_maps
from tpose.explain.figures import ROW_LABEL_W, TITLE_H, grid_size, overlay_map
from tpose.inference.options import DetectorOptions

from .conftest import COCO_DET, LSPET, needs_coco_det, needs_lspet, tiny_model

LSPET_IMAGE = LSPET / "images" / "im00001.jpg"
H, W = 64, 48
TINY_HERE = {"num_layers": 2, "input_size": (H, W)}  # the shared tiny model with two layers, at 64x48
WHOLE_IMAGE = DetectorOptions(None)  # no detector: the whole image is one person

pytestmark = needs_lspet


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain")
    model = tiny_model(**TINY_HERE, num_keypoints=14)
    point = (120.0, 60.0)
    options = ExplainOptions(layers="all", heads="mean", affected=[point], html=out / "page.html", gradient=True,
                             detector=WHOLE_IMAGE)
    summary = run_explain(LSPET_IMAGE, out, model=model, options=options)
    return out, model, point, summary


def _png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_files_and_summary(explained):
    out, _, _, summary = explained
    for f in summary["files"]:
        assert Path(f).is_file(), f
    names = {Path(f).name for f in summary["files"]}
    assert {"dependency_all_mean.png", "dependency_all_mean.npy", "dependency_all_mean_tokens.npy",
            "affected_all_mean.png", "gradient.png", "gradient.json", "position_embedding.png",
            "page.html", "summary.json"} <= names
    assert json.loads((out / "summary.json").read_text())["persons"][0]["keypoint_names"][0] == "right_ankle"
    person = summary["persons"][0]
    assert len(person["keypoints"]) == 14 and set(person["gradient"]) >= {"pearson_norm", "spearman_norm"}
    img_h, img_w = read_image(LSPET_IMAGE).shape[:2]
    assert person["box"] == [0.0, 0.0, float(img_w), float(img_h)]


def test_dependency_figure_npy_and_pixels(explained):
    out, model, _, summary = explained
    tokens = np.load(out / "dependency_all_mean_tokens.npy")
    assert tokens.shape == (2, 14, 8, 6)  # layers, keypoints, token grid
    np.testing.assert_allclose(tokens.sum(axis=(-2, -1)), 1.0, atol=1e-5)  # rows before thresholding
    shown = np.load(out / "dependency_all_mean.npy")
    assert shown.shape == (2, 14, H, W) and shown.dtype == np.float16
    np.testing.assert_array_equal(shown, shown_maps(tokens, (H, W), 0.00075).astype(np.float16))
    png = _png(out / "dependency_all_mean.png")
    assert png.shape[:2] == grid_size(2, 15, (H, W))
    # the tiles are exactly these maps coloured over the crop (away from the star)
    crop = crop_person(read_image(LSPET_IMAGE), summary["persons"][0]["box"], (H, W))
    star = crop.image_to_crop(np.asarray(summary["persons"][0]["keypoints"])[:, :2])
    for r, c in ((0, 0), (1, 5), (1, 13)):
        y, x = TITLE_H + r * H, ROW_LABEL_W + (c + 1) * W
        tile = png[y : y + H, x : x + W].astype(int)
        expected = overlay_map(crop.image, shown[r, c]).astype(int)
        away = np.ones((H, W), bool)
        sx, sy = np.rint(star[c]).astype(int)
        away[max(0, sy - 8) : sy + 9, max(0, sx - 8) : sx + 9] = False
        assert np.abs(tile - expected)[away].max() <= 1
    # the rows are those of the predicted keypoints' tokens
    att = run_attention(model, crop.tensor)
    token = summary["persons"][0]["tokens"][5]
    np.testing.assert_allclose(tokens[1, 5].reshape(-1), att.attention[1].mean(axis=0)[token], atol=1e-6)


def test_affected_is_the_column_of_the_point(explained):
    out, model, point, summary = explained
    cols = np.load(out / "affected_all_mean_tokens.npy")
    assert cols.shape == (2, 1, 8, 6)
    crop = crop_person(read_image(LSPET_IMAGE), summary["persons"][0]["box"], (H, W))
    j = crop_to_token(crop.image_to_crop(np.array([point])), (H, W), (8, 6))[0]
    att = run_attention(model, crop.tensor)
    np.testing.assert_allclose(cols[:, 0].reshape(2, -1), att.attention.mean(axis=1)[:, :, j], atol=1e-6)
    assert _png(out / "affected_all_mean.png").shape[:2] == grid_size(2, 2, (H, W))


def test_gradient_outputs(explained):
    out, _, _, _ = explained
    report = json.loads((out / "gradient.json").read_text())
    assert len(report["keypoints"]) == 14
    for entry in report["keypoints"]:
        assert -1 <= entry["pearson_norm"] <= 1 and -1 <= entry["spearman_norm"] <= 1
    assert _png(out / "gradient.png").shape[:2] == grid_size(3, 15, (H, W))


def test_heads_all_and_last_layer(tmp_path):
    options = ExplainOptions(layers="last", heads="all", positions=False, detector=WHOLE_IMAGE)
    summary = run_explain(LSPET_IMAGE, tmp_path, model=tiny_model(**TINY_HERE), options=options)
    names = sorted(Path(f).name for f in summary["files"] if f.endswith(".png"))
    assert names == ["dependency_last_head0.png", "dependency_last_head1.png", "dependency_last_mean.png"]
    assert np.load(tmp_path / "dependency_last_head1_tokens.npy").shape == (1, 17, 8, 6)
    assert _png(tmp_path / "dependency_last_head0.png").shape[:2] == grid_size(1, 18, (H, W))


@needs_coco_det
def test_boxes_from_a_detections_file(tmp_path):
    # image 785 has two detections scoring above 0.25 (1.0 and 0.30), matched through its numeric name
    options = ExplainOptions(min_box_score=0.25, box=COCO_DET / "test_coco_det_AP_H_56.json", positions=False)
    summary = run_explain(COCO_DET / "000000000785.jpg", tmp_path, model=tiny_model(**TINY_HERE), options=options)
    assert [round(p["box_score"], 2) for p in summary["persons"]] == [1.0, 0.3]
    assert (tmp_path / "person_01" / "dependency_last_mean.png").is_file()
    with pytest.raises(ValueError, match="image id of im00001.jpg"):
        run_explain(LSPET_IMAGE, tmp_path, model=tiny_model(**TINY_HERE),
                    options=ExplainOptions(box=COCO_DET / "test_coco_det_AP_H_56.json"))


def test_tpose_weights_bring_their_architecture(tmp_path):
    from tpose.models.checkpoint import save_weights

    path = save_weights(tiny_model(**TINY_HERE, num_keypoints=14), tmp_path / "tiny_lsp.safetensors")
    summary = run_explain(LSPET_IMAGE, tmp_path / "out", model="transpose_r_a3", weights=path,
                          options=ExplainOptions(positions=False, detector=WHOLE_IMAGE))
    assert summary["input_size"] == [H, W]
    assert summary["persons"][0]["keypoint_names"][-1] == "head_top"
    assert np.load(tmp_path / "out" / "dependency_last_mean_tokens.npy").shape == (1, 14, 8, 6)


def test_clear_errors(tmp_path):
    whole = ExplainOptions(detector=WHOLE_IMAGE)
    with pytest.raises(OSError, match="nope.jpg"):
        run_explain(tmp_path / "nope.jpg", tmp_path, model=tiny_model(**TINY_HERE), options=whole)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        run_explain(LSPET_IMAGE, tmp_path, weights=tmp_path / "missing.safetensors", options=whole)
    with pytest.raises(ValueError, match="14 keypoints but the model predicts 17"):
        run_explain(LSPET_IMAGE, tmp_path, model=tiny_model(**TINY_HERE),
                    options=ExplainOptions(keypoint_set="lsp14", detector=WHOLE_IMAGE))
    with pytest.raises(ValueError, match="x, y, w, h"):
        run_explain(LSPET_IMAGE, tmp_path, model=tiny_model(**TINY_HERE), options=ExplainOptions(box=[1, 2, 3]))
    with pytest.raises(ValueError, match="list of \\(x, y\\) image points"):
        ExplainOptions(affected=[1, 2])  # refused before any work
