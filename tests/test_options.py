"""The typed options (issue 23): one parser per idea, each default in one place, the CLI building them once."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from tpose.cli import build_parser
from tpose.data.lspet import VAL_RANGE
from tpose.engine.options import EvalDataSpec, EvalOptions, EvalSettings
from tpose.export.int8 import DEFAULT_CALIBRATION_COUNT, DEFAULT_TOLERANCE, Int8Options
from tpose.export.onnx_export import ExportOptions
from tpose.inference import PosePredictor
from tpose.inference.detector import PersonBoxes, PersonDetector
from tpose.inference.options import DetectorOptions, PredictOptions, PredictorOptions


class _Nobody(PersonDetector):
    def __call__(self, image: np.ndarray) -> PersonBoxes:
        return PersonBoxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


def test_pose_predictor_keyword_defaults_are_the_options_defaults() -> None:
    params = inspect.signature(PosePredictor.__init__).parameters
    for f in fields(PredictorOptions):
        assert params[f.name].default == getattr(PredictorOptions(), f.name), f.name
    assert params["detector"].default == DetectorOptions().detector == "auto"


@pytest.mark.parametrize("word", ["none", "None", "whole", "whole-image"])
def test_detector_words_for_the_whole_image_parse_to_none(word: str) -> None:
    options = DetectorOptions(word)
    assert options.detector is None and options.whole_image and options.build() is None


def test_a_built_detector_is_used_as_it_is_and_a_missing_file_fails_at_build(tmp_path: Path) -> None:
    nobody = _Nobody()
    assert DetectorOptions(nobody).build() is nobody
    with pytest.raises((FileNotFoundError, ValueError, OSError), match="nope.onnx"):
        DetectorOptions(tmp_path / "nope.onnx").build()


def test_predict_options_choose_the_real_time_path_for_videos_only() -> None:
    images = PredictOptions().for_source(real_time=False)
    assert images.flip_test is True and images.precision == "fp32"
    video = PredictOptions().for_source(real_time=True)
    assert video.flip_test is False and video.precision == "realtime"  # resolved by the predictor for this CPU
    chosen = PredictOptions(flip_test=True, precision="fp32").for_source(real_time=True)
    assert chosen.flip_test is True and chosen.precision == "fp32"
    kept = PredictOptions(predictor=PredictorOptions(batch_size=4, nms_threshold=None)).for_source(real_time=True)
    assert kept.batch_size == 4 and kept.nms_threshold is None


def test_predictor_options_refuse_what_no_predictor_runs() -> None:
    for bad in ({"decode": "soft"}, {"batch_size": 0}, {"channel_order": "rgba"}, {"precision": "fp16"},
                {"memory_format": "nhwc"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PredictorOptions(**bad).check()  # type: ignore[arg-type]


def test_eval_data_spec_is_the_one_reader_of_the_data_flags() -> None:
    spec = EvalDataSpec("lspet", root="x").part_spec()
    assert (spec["first"], spec["last"]) == VAL_RANGE and spec["image_ids"] is None
    assert EvalDataSpec("lsp", root="x", first=3).part_spec()["first"] == 3
    coco = EvalDataSpec("coco", ann_file="a.json", image_dir="i", image_ids=[1, 2]).part_spec()
    assert coco == {"type": "coco", "ann_file": "a.json", "image_dir": "i", "image_ids": [1, 2]}
    with pytest.raises(ValueError, match="--root"):
        EvalDataSpec("lspet").part_spec()
    with pytest.raises(ValueError, match="--ann-file and --image-dir"):
        EvalDataSpec("coco", ann_file="a.json").part_spec()
    with pytest.raises(ValueError, match="unknown --data"):
        EvalDataSpec("mpii").part_spec()
    assert EvalDataSpec("lspet").gt_box_scale == 1.2 and EvalDataSpec("coco").gt_box_scale == 1.0
    with pytest.raises(ValueError, match="precision"):
        EvalSettings(precision="int8")


def test_int8_options_read_a_yaml_where_no_flag_is_given() -> None:
    assert Int8Options.from_data(None) == Int8Options()
    assert (Int8Options().calibration_count, Int8Options().tolerance) == (DEFAULT_CALIBRATION_COUNT, DEFAULT_TOLERANCE)
    from_yaml = Int8Options.from_data({"calibration_count": 64, "tolerance": 0.01}, search=False)
    assert (from_yaml.calibration_count, from_yaml.tolerance, from_yaml.search) == (64, 0.01, False)
    flags = Int8Options.from_data({"calibration_count": 64, "tolerance": 0.01}, 8, 0.0)
    assert (flags.calibration_count, flags.tolerance) == (8, 0.0)


def test_cli_flag_defaults_are_the_options_defaults() -> None:
    parser = build_parser()
    predict = parser.parse_args(["predict", "x.jpg"])
    assert (predict.batch_size, predict.nms, predict.device) == (32, PredictorOptions().nms_threshold, "cpu")
    assert (predict.det_size, predict.det_threshold, predict.detector) == (416, 0.3, "auto")
    assert predict.precision == PredictOptions().precision == "auto"
    evaluation = parser.parse_args(["eval"])
    assert (evaluation.batch_size, evaluation.precision, evaluation.data) == (
        EvalOptions().batch_size, EvalSettings().precision, EvalDataSpec().data)
    export = parser.parse_args(["export"])
    assert (export.opset, export.tolerance, export.attention) == (
        ExportOptions().opset, ExportOptions().tolerance_px, ExportOptions().attention)
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--checkpoint", "w.pth"])  # the former hidden spelling is gone
