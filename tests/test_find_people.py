"""Finding the people (issue 15): the detector is the default where no boxes are given, fetched like the
weights (size and SHA-256 checked, loopback server) or refused offline with what to do; videos are followed
with ids, detection every N frames and smoothing; a camera that cannot be opened says why."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpose.cli import main
from tpose.inference import PosePredictor, PoseTracker, TrackingOptions, open_source
from tpose.inference.detector import YoloxDetector
from tpose.inference.predictor import PersonPose
from tpose.inference.video import agreement, keypoint_box
from tpose.weights import download as wdownload
from tpose.weights import files as wfiles
from tpose.weights.catalog import YOLOX_NANO

from .conftest import COCO_DET, DETECTOR, VIDEO, needs_coco_det, needs_detector, needs_video
from .test_weights_download import _Server

SHIPPED = Path(__file__).resolve().parents[1] / "src/tpose/weights/transpose_r_a4_lsp_mpii_128x96.safetensors"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("TPOSE_OFFLINE", "TPOSE_WEIGHTS_DIR", "TPOSE_DETECTOR", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def detector() -> YoloxDetector:
    if not DETECTOR.is_file():
        pytest.skip(f"the YOLOX-Nano file not found at {DETECTOR}")
    return YoloxDetector(DETECTOR, threads=1)


@pytest.fixture(scope="module")
def predictor(detector) -> PosePredictor:
    return PosePredictor(weights=str(SHIPPED), detector=detector, flip_test=False)


def test_offline_without_a_detector_file_says_how_to_get_one(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.zeros((60, 40, 3), np.uint8))
    code = main(["predict", str(photo), "-o", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert YOLOX_NANO.url in err and str(wfiles.cache_path(YOLOX_NANO)) in err
    assert "TPOSE_DETECTOR=" in err and "--detector none" in err
    with pytest.raises(ConnectionError, match="TPOSE_OFFLINE is set"):
        PosePredictor(weights=str(SHIPPED)).predict(np.zeros((60, 40, 3), np.uint8))


def test_the_detector_downloads_once_checked_by_size_and_sha256(tmp_path, monkeypatch) -> None:
    body = b"pretend this is yolox_nano.onnx" * 100
    server = _Server()
    try:
        server.files["yolox_nano.onnx"] = body
        entry = replace(YOLOX_NANO, url=f"{server.url}/yolox_nano.onnx", size=len(body),
                        sha256=hashlib.sha256(body).hexdigest())
        path = wdownload.resolve_file(entry, progress=False)
        assert path == wfiles.cache_path(entry) and path.read_bytes() == body
        assert wdownload.resolve_file(entry) == path and len(server.requests) == 2  # HEAD + GET, then cached
        path.unlink()
        wrong = replace(entry, sha256="0" * 64)
        with pytest.raises(ValueError, match="SHA-256 of .* is .*, expected 0000"):
            wdownload.resolve_file(wrong, progress=False)
        assert not list(path.parent.iterdir())  # nothing kept
        short = replace(entry, size=len(body) + 1)
        with pytest.raises(ValueError, match=f"has {len(body)} bytes, expected {len(body) + 1}"):
            wdownload.resolve_file(short, progress=False)
    finally:
        server.stop()


@needs_detector
def test_a_path_or_the_variable_points_at_a_local_detector(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    monkeypatch.setenv("TPOSE_DETECTOR", str(DETECTOR))
    assert wdownload.resolve_file(YOLOX_NANO) == DETECTOR
    monkeypatch.setenv("TPOSE_DETECTOR", str(tmp_path / "missing.onnx"))
    with pytest.raises(FileNotFoundError, match=r"missing.onnx: no such file \(the yolox_nano file given by "
                                                "TPOSE_DETECTOR"):
        wdownload.resolve_file(YOLOX_NANO)


@needs_coco_det
def test_detection_is_the_default_and_finds_several_people(predictor) -> None:
    image = COCO_DET / "000000196141.jpg"  # a street with several people
    persons = predictor.predict(image)
    assert len(persons) >= 2
    whole = PosePredictor(weights=str(SHIPPED), detector=None, flip_test=False).predict(image)
    assert len(whole) == 1  # the former default: one box over everyone
    boxes = predictor.detect(image)
    assert len(boxes) >= len(persons) and all(p.box_score > 0.3 for p in persons)


@needs_detector
def test_an_image_with_nobody_gives_no_person_and_says_so(detector, tmp_path, capsys, monkeypatch) -> None:
    grey = np.full((240, 320, 3), 128, np.uint8)
    assert PosePredictor(weights=str(SHIPPED), detector=detector).predict(grey) == []
    cv2.imwrite(str(tmp_path / "grey.jpg"), grey)
    monkeypatch.setenv("TPOSE_DETECTOR", str(DETECTOR))
    code = main(["predict", str(tmp_path / "grey.jpg"), "-o", str(tmp_path / "o"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "0 person(s)" in captured.out and "no person found in 1 image(s): grey.jpg" in captured.err


def test_a_camera_that_cannot_be_opened_says_which_and_why(tmp_path, capsys) -> None:
    code = main(["predict", "webcam:9", "-o", str(tmp_path), "--whole-image", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "camera webcam:9 cannot be opened: /dev/video9 does not exist" in err
    with pytest.raises(ValueError, match="a camera is webcam:N"):
        open_source("webcam:front")


def test_keypoint_box_spans_the_confident_keypoints() -> None:
    person = PersonPose(keypoints=np.array([[10, 20], [30, 60], [500, 500]], np.float32),
                        scores=np.array([0.9, 0.8, 0.1], np.float32), box=np.zeros(4, np.float32))
    np.testing.assert_allclose(keypoint_box(person, 0.3, 1.0), [10, 20, 20, 40])
    np.testing.assert_allclose(keypoint_box(person, 0.3, 1.5), [5, 10, 30, 60])
    assert keypoint_box(person, 0.85, 1.0) is None  # one confident keypoint is no box


@needs_video
def test_video_ids_stay_with_people_and_detection_every_n_frames_agrees(predictor) -> None:
    frames = [f.image for f in open_source(VIDEO, max_frames=24)]
    every = PoseTracker(predictor, TrackingOptions())
    sparse = PoseTracker(predictor, TrackingOptions(detect_every=4))
    runs_every = [every(img, i, i / 10.0) for i, img in enumerate(frames)]
    runs_sparse = [sparse(img, i, i / 10.0) for i, img in enumerate(frames)]
    assert every.detections_run == 24 and sparse.detections_run == 6
    # ids stay with people: each id's box moves smoothly from frame to frame (a swap would jump), and the
    # people of the first frame keep their ids for most of the clip (two of them cross at the end)
    assert all(p.track_id is not None for ps in runs_every for p in ps)
    centres: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, ps in enumerate(runs_every):
        for p in ps:
            centres.setdefault(p.track_id, []).append((i, p.box[:2] + p.box[2:] / 2, float(p.box[3])))
    for track in centres.values():
        for (i, a, ha), (j, b, hb) in zip(track, track[1:], strict=False):
            assert np.linalg.norm(b - a) <= 0.5 * max(ha, hb) * (j - i), track  # under half a person per frame
    first = {p.track_id for p in runs_every[0]}
    lasting = [t for t in first if len(centres[t]) >= 16]
    assert len(first) >= 3 and len(lasting) >= 3
    # carrying boxes by the poses agrees with detecting every frame
    agree = agreement(runs_every, runs_sparse)
    assert agree["persons"] > 60 and agree["unmatched_share"] < 0.25
    assert agree["median_box_iou"] > 0.7 and agree["median_keypoint_distance_of_height"] < 0.05


@needs_video
def test_predict_on_a_video_writes_ids_into_json_and_video(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TPOSE_DETECTOR", str(DETECTOR))
    code = main(["predict", str(VIDEO), "-o", str(tmp_path), "--max-frames", "6", "--no-progress", "--no-flip"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "vtest_pose.json").read_text())
    assert len(record["frames"]) == 6
    assert all("track_id" in p for f in record["frames"] for p in f["persons"])
    capture = cv2.VideoCapture(str(tmp_path / "vtest_pose.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    code = main(["predict", str(VIDEO), "-o", str(tmp_path / "b"), "--max-frames", "3", "--no-progress", "--no-track",
                 "--no-images"])
    record = json.loads((tmp_path / "b" / "vtest_pose.json").read_text())
    assert code == 0 and not any("track_id" in p for f in record["frames"] for p in f["persons"])
