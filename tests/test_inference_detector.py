"""YOLOX person detector: letterbox and decoder arithmetic on synthetic tensors, NMS, the file checks, and the
real YOLOX-Nano file on real images (skipped without /work/shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tpose.data.image_io import read_image
from tpose.inference.detector import (
    DetectorModelError,
    PersonBoxes,
    PersonDetector,
    YoloxDetector,
    decode_yolox,
    letterbox,
    parse_input_size,
    yolox_grid,
    yolox_rows,
)
from tpose.utils.boxes import nms

from .conftest import COCO_DET, DETECTOR, needs_coco_det, needs_detector


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of x, y, w, h boxes, written independently of the module under test."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    out = np.zeros((len(a), len(b)))
    for i, (ax, ay, aw, ah) in enumerate(a):
        for j, (bx, by, bw, bh) in enumerate(b):
            iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
            ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
            inter = iw * ih
            out[i, j] = inter / (aw * ah + bw * bh - inter)
    return out


# ---------------------------------------------------------------- letterbox, grid, decoder (no model file)


def test_letterbox_non_square_top_left_bgr_and_padding() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # R, G, B
    blob, r = letterbox(image, (416, 416))
    assert blob.shape == (1, 3, 416, 416) and blob.dtype == np.float32
    assert r == pytest.approx(416 / 200)
    # resized to 208 x 416 at the top-left: BGR planes, raw 0-255
    assert np.all(blob[0, 0, :208, :] == 30) and np.all(blob[0, 1, :208, :] == 20) and np.all(blob[0, 2, :208, :] == 10)
    assert np.all(blob[0, :, 208:, :] == 114)


def test_letterbox_tall_image_pads_on_the_right() -> None:
    image = np.full((640, 320, 3), 200, np.uint8)
    blob, r = letterbox(image, (320, 320))
    assert r == pytest.approx(0.5)
    assert np.all(blob[0, :, :, :160] == 200) and np.all(blob[0, :, :, 160:] == 114)


def test_grid_layout_and_row_counts() -> None:
    grid, stride = yolox_grid(416, 416)
    assert grid.shape == (3549, 2) and stride.shape == (3549, 1)
    assert grid[0].tolist() == [0, 0] and grid[1].tolist() == [1, 0] and grid[52].tolist() == [0, 1]
    assert stride[2703, 0] == 8 and stride[2704, 0] == 16 and grid[2704].tolist() == [0, 0]
    assert stride[3548, 0] == 32 and grid[3548].tolist() == [12, 12]
    assert [yolox_rows(s) for s in (320, 416, 512, 640)] == [2100, 3549, 5376, 8400]
    assert yolox_rows((384, 640)) == 48 * 80 + 24 * 40 + 12 * 20
    assert yolox_grid(416, 416)[0] is grid  # cached
    with pytest.raises(ValueError, match="multiples of 32"):
        parse_input_size(400)


def _row(level: int, x: int, y: int, size: int = 416) -> int:
    """Output row of cell (x, y) on level 0/1/2 (strides 8/16/32) at a square input."""
    start = sum((size // s) ** 2 for s in (8, 16, 32)[:level])
    return start + y * (size // (8, 16, 32)[level]) + x


def _put(out: np.ndarray, row: int, cx: float, cy: float, w: float, h: float, stride: int, grid: tuple[int, int],
         obj: float, cls: int, p: float) -> None:
    """Write the raw values that decode to a box centred (cx, cy) of size w x h in input pixels."""
    out[0, row, 0] = cx / stride - grid[0]
    out[0, row, 1] = cy / stride - grid[1]
    out[0, row, 2] = np.log(w / stride)
    out[0, row, 3] = np.log(h / stride)
    out[0, row, 4] = obj
    out[0, row, 5 + cls] = p


def test_decoder_boxes_back_in_a_non_square_image_with_class_filter_threshold_and_nms() -> None:
    out = np.zeros((1, 3549, 85), np.float32)
    # image 600 x 832 (h x w): r = min(416 / 600, 416 / 832) = 0.5
    # a person on the stride-16 cell (10, 5), centre (168, 84), 64 x 128 in the input: score 0.9 * 0.8
    _put(out, _row(1, 10, 5), 168, 84, 64, 128, 16, (10, 5), 0.9, 0, 0.8)
    # a near duplicate on the stride-8 level, lower score: NMS removes it
    _put(out, _row(0, 21, 10), 170, 86, 62, 126, 8, (21, 10), 0.9, 0, 0.6)
    # a second person far away (stride 32, cell (3, 6)), centre (110, 200), 40 x 60: score 0.5
    _put(out, _row(2, 3, 6), 110, 200, 40, 60, 32, (3, 6), 1.0, 0, 0.5)
    # a confident car (class 2) and a faint person (0.25 < 0.3): both dropped
    _put(out, _row(1, 20, 12), 330, 200, 50, 50, 16, (20, 12), 0.99, 2, 0.99)
    _put(out, _row(0, 40, 40), 324, 324, 30, 30, 8, (40, 40), 0.5, 0, 0.5)
    found = decode_yolox(out, (416, 416), 0.5, (600, 832), score_threshold=0.3, nms_threshold=0.45)
    assert len(found) == 2
    np.testing.assert_allclose(found.scores, [0.72, 0.5], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[0], [272, 40, 128, 256], atol=1e-3)  # (168 - 32) / 0.5, ...
    np.testing.assert_allclose(found.boxes[1], [180, 340, 80, 120], atol=1e-3)
    assert found.boxes.dtype == np.float32 and found.scores.dtype == np.float32
    # NMS off (threshold 1): the duplicate comes back
    assert len(decode_yolox(out, (416, 416), 0.5, (600, 832), 0.3, 1.0)) == 3
    # the car is found when asking for class 2
    cars = decode_yolox(out, (416, 416), 0.5, (600, 832), 0.3, 0.45, class_id=2)
    assert len(cars) == 1 and cars.scores[0] == pytest.approx(0.99 * 0.99)


def test_decoder_clips_to_the_image_and_checks_the_row_count() -> None:
    out = np.zeros((1, 2100, 85), np.float32)
    # 320 input, image 200 x 320 (r = 1): a box centred at x = 310, 40 wide, runs past the right edge (320)
    _put(out, _row(1, 19, 5, 320), 310, 90, 40, 60, 16, (19, 5), 1.0, 0, 0.9)
    found = decode_yolox(out, (320, 320), 1.0, (200, 320))
    np.testing.assert_allclose(found.boxes[0], [290, 60, 30, 60], atol=1e-3)
    with pytest.raises(ValueError, match=r"expected \[1, 3549, 85\]"):
        decode_yolox(out, (416, 416), 1.0, (200, 320))


def _nms_reference(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        xywh = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]  # noqa: E731
        if all(_iou(xywh(boxes[i]), xywh(boxes[k]))[0, 0] <= thr for k in keep):
            keep.append(i)
    return keep


def test_nms_known_case_and_random_boxes_against_a_plain_loop() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0, 2]  # IoU(0, 1) = 81 / 119 = 0.68
    assert nms(boxes, scores, 0.7).tolist() == [0, 1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (60, 2))
    wh = rng.uniform(5, 40, (60, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    for thr in (0.3, 0.45, 0.6):
        assert nms(boxes, scores, thr).tolist() == _nms_reference(boxes, scores, thr)


def test_person_boxes_sorted_and_converted() -> None:
    pb = PersonBoxes(np.array([[0, 0, 5, 5], [10, 10, 4, 6]]), np.array([0.2, 0.9]))
    assert pb.scores.tolist() == pytest.approx([0.9, 0.2])
    assert pb.boxes[0].tolist() == [10, 10, 4, 6]
    assert pb.xyxy()[0].tolist() == [10, 10, 14, 16]
    back = PersonBoxes.from_xyxy(pb.xyxy(), pb.scores)
    np.testing.assert_array_equal(back.boxes, pb.boxes)
    assert len(pb.above(0.5)) == 1 and len(PersonBoxes.empty()) == 0
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        PersonBoxes(np.zeros((2, 4)), np.zeros(1))


def test_another_detector_plugs_in_through_the_protocol() -> None:
    class WholeImage:
        def __call__(self, image: np.ndarray) -> PersonBoxes:
            h, w = image.shape[:2]
            return PersonBoxes(np.array([[0, 0, w, h]]), np.array([1.0]))

    assert isinstance(WholeImage(), PersonDetector)
    assert WholeImage()(np.zeros((4, 6, 3), np.uint8)).boxes.tolist() == [[0, 0, 6, 4]]


# ---------------------------------------------------------------- file checks


def _write_model(path: Path, graph_maker: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 416, 416])
    if graph_maker == "identity":  # the right input, but a 4-D output
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 416, 416])
        nodes = [helper.make_node("Identity", ["images"], ["output"])]
    else:  # [1, 100, 85]: YOLOX's columns but a row count no stride layout gives
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 100, 85])
        value = numpy_helper.from_array(np.zeros((1, 100, 85), np.float32), "value")
        nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),  # uses the input
                 helper.make_node("Constant", [], ["c"], value=value),
                 helper.make_node("Mul", ["c", "m"], ["output"])]
    graph = helper.make_graph(nodes, "not_yolox", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_refuses_missing_empty_and_non_onnx_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx.*expected a YOLOX ONNX file"):
        YoloxDetector(missing)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(DetectorModelError, match=r"empty.*empty\.onnx"):
        YoloxDetector(empty)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(DetectorModelError, match=r"notes\.onnx") as info:
        YoloxDetector(text)
    assert "\n" not in str(info.value)


def test_refuses_onnx_files_that_are_not_yolox(tmp_path: Path) -> None:
    ident = _write_model(tmp_path / "identity.onnx", "identity")
    with pytest.raises(DetectorModelError, match=r"identity\.onnx: not a YOLOX detector: its output 'output' is "
                                                 r"float \[1, 3, 416, 416\]"):
        YoloxDetector(ident)
    rows = _write_model(tmp_path / "rows.onnx", "rows")
    with pytest.raises(DetectorModelError, match=r"rows\.onnx: not a YOLOX detector for input 416x416: output shape "
                                                 r"\[1, 100, 85\], expected \[1, 3549, 85\]"):
        YoloxDetector(rows)


@needs_detector
def test_refuses_a_truncated_yolox_file(tmp_path: Path) -> None:
    data = DETECTOR.read_bytes()
    for cut in (len(data) // 2, len(data) - 1000):
        part = tmp_path / f"cut{cut}.onnx"
        part.write_bytes(data[:cut])
        with pytest.raises(DetectorModelError, match=rf"cut{cut}\.onnx") as info:
            YoloxDetector(part)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------- the real YOLOX-Nano file


@pytest.fixture(scope="module")
def nano() -> YoloxDetector:
    return YoloxDetector(DETECTOR, input_size=416, threads=1)


@needs_detector
def test_native_and_symbolic_sizes_run_with_the_right_row_counts() -> None:
    for size, rows in ((320, 2100), (512, 5376), (640, 8400), ((384, 640), 5040)):
        det = YoloxDetector(DETECTOR, input_size=size, threads=1)
        assert det.model_info.made_symbolic and det.model_info.native_input_size == (416, 416)
        h, w = det.input_size
        out = det.run(np.full((1, 3, h, w), 114, np.float32))
        assert out.shape == (1, rows, 85) and det.output_rows == rows
    native = YoloxDetector(DETECTOR, input_size=416, threads=1)
    assert not native.model_info.made_symbolic and native.output_rows == 3549


@needs_detector
def test_session_options_threads_and_spinning(nano: YoloxDetector) -> None:
    so = nano.session.get_session_options()
    assert so.intra_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spin = YoloxDetector(DETECTOR, threads=2, spinning=True)
    assert spin.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert YoloxDetector(DETECTOR).threads >= 1
    with pytest.raises(ValueError, match="RGB uint8"):
        nano(np.zeros((50, 60), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        nano(np.zeros((50, 60, 3), np.float32))


@needs_detector
def test_nobody_in_a_flat_grey_image(nano: YoloxDetector) -> None:
    for shape in ((480, 640, 3), (300, 200, 3)):
        assert len(nano(np.full(shape, 128, np.uint8))) == 0


@needs_detector
@needs_coco_det
def test_finds_the_people_in_real_val_images(nano: YoloxDetector) -> None:
    gt = json.loads((COCO_DET / "test_coco.json").read_text())
    for image in gt["images"]:
        if image["id"] == 197388:
            continue  # crowded scene; the three other images suffice
        rgb = read_image(COCO_DET / image["file_name"])
        assert rgb.shape[:2] == (image["height"], image["width"])
        found = nano(rgb)
        large = np.array([a["bbox"] for a in gt["annotations"]
                          if a["image_id"] == image["id"] and a["area"] > 96 * 96 and not a["iscrowd"]])
        assert len(large) >= 1
        assert len(found) >= len(large)
        assert np.all(np.diff(found.scores) <= 0) and found.scores.min() >= 0.3
        # every large person has its own detection with IoU >= 0.5, i.e. in original image coordinates
        best = _iou(large, found.boxes).max(axis=1)
        assert np.all(best >= 0.5), (image["file_name"], best)
        assert np.all(found.boxes[:, 0] >= 0) and np.all(found.boxes[:, :2] + found.boxes[:, 2:]
                                                         <= [image["width"] + 1e-3, image["height"] + 1e-3])


@needs_detector
@needs_coco_det
def test_same_people_at_320_and_640() -> None:
    rgb = read_image(COCO_DET / "000000000785.jpg")  # one large skier
    gt = np.array([[281, 45, 219, 347]])
    for size in (320, 640):
        found = YoloxDetector(DETECTOR, input_size=size, threads=1)(rgb)
        assert len(found) >= 1 and _iou(gt, found.boxes[:1])[0, 0] >= 0.8
