"""Prediction inputs: images, folders with bad files, videos, and COCO detection boxes matched to files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpose.data.image_io import ImageReadError
from tpose.inference.sources import (
    Detections,
    ImageFiles,
    VideoFrames,
    image_id_for,
    load_coco_image_ids,
    load_detections,
    open_source,
)

from .conftest import COCO_DET, needs_coco_det


def write_image(path: Path, value: int, size: tuple[int, int] = (20, 30)) -> None:
    img = np.full((*size, 3), value, np.uint8)
    img[0, 0] = (255, 0, 0)  # a red corner pixel shows the channel order
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def write_video(path: Path, frames: int = 5, size: tuple[int, int] = (48, 64), fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.zeros((*size, 3), np.uint8)
        frame[:, :, 2] = 40 * i  # red in BGR
        writer.write(frame)
    writer.release()


def test_folder_is_sorted_and_skips_a_corrupt_image(tmp_path: Path) -> None:
    write_image(tmp_path / "b.png", 100)
    write_image(tmp_path / "a.jpg", 50)
    write_image(tmp_path / "c.JPEG", 150)
    (tmp_path / "broken.jpg").write_bytes(b"\x00 definitely not a jpeg \xff" * 10)
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(tmp_path)
    assert isinstance(source, ImageFiles) and len(source) == 4
    frames = list(source)
    assert [f.name for f in frames] == ["a.jpg", "b.png", "c.JPEG"]
    assert [f.index for f in frames] == [0, 1, 3]
    assert frames[1].image.shape == (20, 30, 3) and frames[1].image.dtype == np.uint8
    assert tuple(frames[1].image[0, 0]) == (255, 0, 0)  # RGB
    assert len(source.skipped) == 1
    assert source.skipped[0].path.endswith("broken.jpg") and "broken.jpg" in source.skipped[0].reason


def test_single_images_raise_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        list(open_source(bad))
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        open_source(tmp_path / "missing.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        open_source(tmp_path / "empty")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unknown file type '.csv'"):
        open_source(tmp_path / "data.csv")


def test_a_list_of_files_keeps_its_order_and_skips_missing_ones(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", 10)
    write_image(tmp_path / "y.png", 20)
    source = open_source([tmp_path / "y.png", tmp_path / "gone.png", tmp_path / "x.png"])
    assert [f.name for f in source] == ["y.png", "x.png"]
    assert len(source.skipped) == 1 and "gone.png" in source.skipped[0].reason


def test_video_frames_come_out_in_order_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, frames=5)
    source = open_source(path)
    assert isinstance(source, VideoFrames)
    assert source.fps == pytest.approx(10.0) and source.frame_size == (48, 64) and len(source) == 5
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[2].name == "clip#000002" and frames[2].image.shape == (48, 64, 3)
    red = [float(f.image[..., 0].mean()) for f in frames]
    assert red == sorted(red) and red[-1] > 100  # red rises frame by frame, in the R channel
    assert float(frames[-1].image[..., 2].mean()) < 20


def test_unreadable_video_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all")
    with pytest.raises(ImageReadError, match="broken.mp4"):
        open_source(path)


@needs_coco_det
def test_real_detections_match_files_by_ground_truth_or_stem() -> None:
    dets = load_detections(COCO_DET / "test_coco_det_AP_H_56.json", gt_json=COCO_DET / "test_coco.json")
    assert len(dets) == 118 and sorted(dets.boxes) == [785, 40083, 196141, 197388]
    boxes, scores = dets.for_image("000000000785.jpg")
    assert boxes.shape == (22, 4) and scores.shape == (22,)
    assert np.all(np.diff(scores) <= 0)  # best first
    records = json.loads((COCO_DET / "test_coco_det_AP_H_56.json").read_text())
    best = max((r for r in records if r["image_id"] == 785), key=lambda r: r["score"])
    np.testing.assert_allclose(boxes[0], best["bbox"], rtol=1e-6)
    assert dets.for_image(COCO_DET / "000000040083.jpg")[0].shape == (26, 4)
    assert dets.for_image(785)[0].shape == (22, 4)
    assert dets.for_image("holiday.jpg") is None  # no id for this name
    assert dets.for_image("000000000001.jpg")[0].shape == (0, 4)  # a known id without boxes

    strict = load_detections(COCO_DET / "test_coco_det_AP_H_56.json", min_score=0.9)
    kept = sum(r["score"] >= 0.9 for r in records)
    assert len(strict) == kept and strict.dropped == 118 - kept
    assert strict.for_image("000000000785.jpg")[1].min() >= 0.9  # matched by the numeric stem


@needs_coco_det
def test_ground_truth_ids_win_over_the_file_stem(tmp_path: Path) -> None:
    gt = {"images": [{"file_name": "val2017/person.jpg", "id": 785}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    ids = load_coco_image_ids(tmp_path / "gt.json")
    assert ids == {"person.jpg": 785}
    assert image_id_for("some/dir/person.jpg", ids) == 785
    assert image_id_for("000000000042.png", ids) == 42
    assert image_id_for("person2.jpg", ids) is None
    dets = load_detections(COCO_DET / "test_coco_det_AP_H_56.json", gt_json=tmp_path / "gt.json")
    assert isinstance(dets, Detections) and dets.for_image("person.jpg")[0].shape == (22, 4)


def test_malformed_detection_records_are_named(tmp_path: Path) -> None:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}, {"image_id": 2, "score": 0.5}]))
    with pytest.raises(ValueError, match="record 1"):
        load_detections(path)
    path.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 10], "score": 0.9}]))
    with pytest.raises(ValueError, match="record 0 has a bad bbox"):
        load_detections(path)
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="JSON list"):
        load_detections(path)
    path.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_detections(path)


def test_other_categories_and_empty_boxes_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "dets.json"
    records = [
        {"image_id": 3, "bbox": [0, 0, 10, 20], "score": 0.5, "category_id": 1},
        {"image_id": 3, "bbox": [5, 5, 10, 20], "score": 0.9, "category_id": 1},
        {"image_id": 3, "bbox": [0, 0, 10, 20], "score": 0.99, "category_id": 18},
        {"image_id": 3, "bbox": [0, 0, 0, 20], "score": 0.8, "category_id": 1},
    ]
    path.write_text(json.dumps(records))
    dets = load_detections(path)
    boxes, scores = dets.for_image(3)
    assert scores.tolist() == pytest.approx([0.9, 0.5]) and boxes[0].tolist() == [5, 5, 10, 20]
    assert dets.dropped == 2
