"""Prediction outputs: drawing, per-image/video JSON, COCO results, and ``run_predict`` end to end."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import tpose
from tpose.data.keypoint_sets import COCO17, LSP14, KeypointSet
from tpose.inference import PersonPose, PosePredictor, run_predict
from tpose.inference.draw import draw_poses
from tpose.inference.options import DetectorOptions, OutputOptions, PredictOptions, PredictorOptions
from tpose.inference.results import (
    coco_absent_joints,
    coco_keypoint_results,
    image_record,
    video_record,
    write_json,
)

from .conftest import COCO_DET, needs_coco_det, tiny_model


@pytest.fixture(scope="module")
def tiny() -> tpose.TransPose:
    return tiny_model(input_size=(64, 48))


def a_person(points: list[tuple[float, float]], scores: list[float], kset: KeypointSet) -> PersonPose:
    return PersonPose(
        keypoints=np.array(points, np.float32),
        scores=np.array(scores, np.float32),
        box=np.array([10, 10, 50, 80], np.float32),
        box_score=0.9,
        score=0.5,
        keypoint_names=kset.names,
    )


TRIANGLE = KeypointSet(
    name="triangle",
    names=("left_a", "right_b", "c"),
    skeleton=((0, 1), (1, 2)),
    colors=((255, 0, 0), (0, 0, 255), (0, 255, 0)),
)


def test_drawing_uses_the_set_colours_and_the_threshold() -> None:
    image = np.zeros((100, 120, 3), np.uint8)
    person = a_person([(20, 20), (100, 20), (60, 80)], [0.9, 0.9, 0.1], TRIANGLE)
    out = draw_poses(image, [person], TRIANGLE, threshold=0.3)
    assert out.dtype == np.uint8 and out.shape == image.shape and out is not image
    assert image.max() == 0  # the input is left alone
    r, g, b = (int(v) for v in out[20, 60])  # the limb between red and blue joints: their mean colour
    assert r == b and r > 100 and g == 0
    assert out[20, 20, 0] > 200 and out[20, 20, 2] < 50  # joint 0 in its own colour (RGB)
    assert out[20, 100, 2] > 200 and out[20, 100, 0] < 50
    assert out[75:86, 55:66].max() == 0  # joint 2 is below the threshold: no dot, no limb
    assert out[50, 80].max() == 0
    with_box = draw_poses(image, [person], TRIANGLE, threshold=0.3, draw_boxes=True)
    assert with_box[50, 10].max() > 0 and out[50, 10].max() == 0
    assert draw_poses(image, [person], TRIANGLE, threshold=0.95).max() == 0
    with pytest.raises(ValueError, match="3 keypoints"):
        draw_poses(image, [a_person([(1, 1)] * 17, [1.0] * 17, COCO17)], TRIANGLE)


def test_image_and_video_records_are_plain_json() -> None:
    person = a_person([(1.0, 2.0), (3.0, 4.0), (5.5, 6.25)], [0.9, 0.8, 0.1], TRIANGLE)
    record = image_record("a/b.jpg", (100, 120), [person], TRIANGLE, image_id=7)
    again = json.loads(json.dumps(record, allow_nan=False))
    assert again["file"] == "a/b.jpg" and again["size"] == {"width": 120, "height": 100}
    assert again["keypoint_set"] == "triangle" and again["image_id"] == 7
    assert again["persons"][0]["keypoints"]["c"] == [5.5, 6.25, 0.1]
    video = video_record("clip.mp4", 10.0, (48, 64), [(0, [person]), (1, [])], TRIANGLE)
    again = json.loads(json.dumps(video, allow_nan=False))
    assert [f["frame"] for f in again["frames"]] == [0, 1] and again["frames"][1]["time"] == 0.1
    assert again["frames"][0]["persons"][0]["keypoints"]["left_a"] == [1.0, 2.0, 0.9]


@needs_coco_det
def test_coco_results_load_into_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    person = a_person([(100.0 + i, 50.0 + 2 * i) for i in range(17)], [0.5] * 17, COCO17)
    results = coco_keypoint_results(785, [person, person])
    assert len(results) == 2 and len(results[0]["keypoints"]) == 51
    path = write_json(tmp_path / "res.json", results, indent=None)
    gt = COCO(str(COCO_DET / "test_coco.json"))
    dt = gt.loadRes(str(path))
    assert len(dt.getAnnIds(imgIds=[785])) == 2


def test_coco_results_of_an_lsp14_model_follow_coco_order_and_zero_the_absent_joints() -> None:
    points = [(10.0 * i, 5.0 * i) for i in range(14)]
    person = a_person(points, [0.9] * 14, LSP14)
    (record,) = coco_keypoint_results(7, [person], keypoint_set=LSP14)
    triples = np.array(record["keypoints"]).reshape(17, 3)
    absent = coco_absent_joints(LSP14)
    assert absent == ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    for i, name in enumerate(COCO17.names):
        if name in absent:
            assert triples[i].tolist() == [0.0, 0.0, 0.0]
        else:
            j = LSP14.names.index(name)
            assert triples[i].tolist() == [points[j][0], points[j][1], 0.9]
    assert coco_absent_joints(COCO17) == []
    other = KeypointSet("dots", ("a", "b"), ())
    with pytest.raises(ValueError, match="shares no joint name with COCO-17"):
        coco_keypoint_results(7, [a_person([(0.0, 0.0), (1.0, 1.0)], [1.0, 1.0], other)], keypoint_set=other)


def test_run_predict_on_a_folder_finishes_past_a_corrupt_image(tiny: tpose.TransPose, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("one.jpg", "two.png"):
        img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        assert cv2.imwrite(str(folder / name), img)
    (folder / "zz_corrupt.jpg").write_bytes(rng.integers(0, 255, 500, dtype=np.uint8).tobytes())
    out = tmp_path / "out"
    options = PredictOptions(predictor=PredictorOptions(batch_size=2), detector=DetectorOptions(None),
                             output=OutputOptions(coco_results=out / "coco.json"), progress=False)
    summary = run_predict(folder, out, model=tiny, options=options)
    assert summary["processed"] == 2 and summary["persons"] == 2 and summary["kind"] == "folder"
    assert len(summary["skipped"]) == 1
    skipped = summary["skipped"][0]
    assert skipped["file"].endswith("zz_corrupt.jpg") and "zz_corrupt.jpg" in skipped["reason"]
    assert summary["boxes"] == "whole image"
    for stem in ("one", "two"):
        drawn = cv2.imread(str(out / f"{stem}_pose.jpg"))
        assert drawn is not None and drawn.shape == (60, 80, 3)
        record = json.loads((out / f"{stem}_pose.json").read_text())
        assert record["size"] == {"width": 80, "height": 60} and len(record["persons"]) == 1
        assert list(record["persons"][0]["keypoints"]) == list(COCO17.names)
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco) == 2 and summary["ids_by_order"] == ["one.jpg", "two.png"]
    assert json.dumps(summary)  # the summary itself is JSON-ready for the CLI


def test_run_predict_on_a_video_writes_a_video_and_per_frame_json(tiny: tpose.TransPose, tmp_path: Path) -> None:
    path = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (64, 48))
    for i in range(6):
        frame = np.full((48, 64, 3), 30 * i, np.uint8)
        cv2.circle(frame, (10 + 8 * i, 24), 6, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    options = PredictOptions(detector=DetectorOptions(None), output=OutputOptions(draw_threshold=0.0), progress=False)
    summary = run_predict(path, tmp_path / "out", model=tiny, options=options)
    assert summary["kind"] == "video" and summary["processed"] == 6
    video = cv2.VideoCapture(summary["outputs"]["video"])
    assert video.isOpened()
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and video.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    ok, first = video.read()
    video.release()
    assert ok and first.shape == (48, 64, 3)
    record = json.loads((tmp_path / "out" / "walk_pose.json").read_text())
    assert record["fps"] == 12.0 and [f["frame"] for f in record["frames"]] == list(range(6))
    assert all(len(f["persons"]) == 1 for f in record["frames"])


@needs_coco_det
def test_run_predict_with_detections_and_coco_results(tiny: tpose.TransPose, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_predict(
        COCO_DET,
        out,
        model=tiny,
        options=PredictOptions(
            predictor=PredictorOptions(nms_threshold=None),
            detections=COCO_DET / "test_coco_det_AP_H_56.json",
            det_gt=COCO_DET / "test_coco.json",
            min_box_score=0.6,
            output=OutputOptions(coco_results=out / "results.json", save_images=False),
            progress=False,
            detector=DetectorOptions(None),
        ),
    )
    dets = json.loads((COCO_DET / "test_coco_det_AP_H_56.json").read_text())
    expected = sum(d["score"] >= 0.6 for d in dets)
    assert summary["processed"] == 4 and summary["persons"] == expected and summary["unmatched"] == []
    assert summary["outputs"]["images"] == [] and len(summary["outputs"]["json"]) == 4
    results = json.loads((out / "results.json").read_text())
    assert len(results) == expected
    assert {r["image_id"] for r in results} == {d["image_id"] for d in dets if d["score"] >= 0.6}
    record = json.loads((out / "000000000785_pose.json").read_text())
    assert record["image_id"] == 785
    assert all(p["box_score"] >= 0.6 for p in record["persons"])


def test_run_predict_warns_about_random_weights(tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    assert cv2.imwrite(str(img), np.zeros((10, 10, 3), np.uint8))
    quiet = PredictOptions(detector=DetectorOptions(None), progress=False)
    with pytest.raises(ValueError, match="unknown model"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_predict(img, tmp_path / "out", model="transpose_nope", options=quiet)
    with pytest.warns(UserWarning, match="random initial weights"), pytest.raises(ValueError):
        run_predict(img, tmp_path / "out", model="transpose_r_a3",
                    options=replace(quiet, predictor=PredictorOptions(input_size=(10, 10))))


def test_weights_files_bring_their_architecture_and_keypoint_set(tmp_path: Path) -> None:
    from tpose.models.checkpoint import save_weights

    model = tiny_model(seed=1, input_size=(64, 48), num_keypoints=3)
    path = save_weights(model, tmp_path / "tri.safetensors", extra_metadata={"keypoint_set": TRIANGLE.to_dict()})
    pred = PosePredictor(path, detector=None)
    assert pred.keypoint_set.names == TRIANGLE.names and pred.input_size == (64, 48)
    image = np.random.default_rng(0).integers(0, 255, (70, 50, 3), dtype=np.uint8)
    (person,) = pred.predict(image)
    (reference,) = PosePredictor(model.eval(), keypoint_set=TRIANGLE, detector=None).predict(image)
    np.testing.assert_allclose(person.keypoints, reference.keypoints, atol=1e-3)
    assert list(person.to_dict()["keypoints"]) == ["left_a", "right_b", "c"]


@pytest.mark.filterwarnings("ignore")
def test_onnx_backend_matches_torch(tiny: tpose.TransPose, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        tiny,
        torch.randn(1, 3, 64, 48),
        str(path),
        input_names=["image"],
        output_names=["heatmaps"],
        dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}},
        dynamo=False,
    )
    image = np.random.default_rng(1).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    boxes = [[5, 5, 40, 60], [20, 10, 45, 70], [0, 0, 70, 90]]
    onnx_pred = PosePredictor(path, backend="onnx", keypoint_set="coco17", batch_size=2, decode="argmax", detector=None)
    torch_pred = PosePredictor(tiny, batch_size=2, decode="argmax", detector=None)
    assert onnx_pred.input_size == (64, 48)  # read off the ONNX input
    patches = np.stack([torch_pred.crop_patch(image, b)[0] for b in boxes])
    np.testing.assert_allclose(onnx_pred.forward_crops(patches), torch_pred.forward_crops(patches), atol=1e-4)
    for a, b in zip(onnx_pred.predict(image, boxes), torch_pred.predict(image, boxes), strict=True):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    with pytest.raises(NotImplementedError, match="torch backend"):
        onnx_pred.forward_crops(patches, return_attention=True)


def test_persons_too_unsure_to_draw_are_counted_and_explained(tiny: tpose.TransPose, tmp_path: Path) -> None:
    """A photo whose persons are all too unsure to draw must not leave the user with a bare picture and no word."""
    from tpose.inference.draw import worth_drawing
    from tpose.inference.predict_job import summary_notes

    img = tmp_path / "photo.jpg"
    assert cv2.imwrite(str(img), np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    options = PredictOptions(detector=DetectorOptions(None), progress=False)
    summary = run_predict(img, tmp_path / "out", model=tiny, options=options)
    record = json.loads((tmp_path / "out" / "photo_pose.json").read_text())
    persons = [PersonPose(keypoints=np.array([[0.0, 0.0]] * len(p["keypoints"]), np.float32),
                          scores=np.array([k[2] for k in p["keypoints"].values()], np.float32),
                          box=np.array(p["box"], np.float32), box_score=p["box_score"], score=p["score"])
               for p in record["persons"]]
    unsure = sum(not worth_drawing(p, OutputOptions().draw_threshold) for p in persons)
    assert unsure == 1  # random weights: a flat heatmap, no keypoint worth drawing
    assert summary["not_drawn"] == unsure and summary["persons"] == 1
    assert any(n.startswith("1 of the 1 person(s) found are not drawn: their poses are unsure")
               for n in summary_notes(summary))
    assert not any("not drawn" in n for n in summary_notes({**summary, "not_drawn": 0}))
