"""The ``tpose`` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import errno
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import cv2
import torch

from .bench.speed import PATHS as BENCH_PATHS
from .bench.speed import PRECISIONS, SpeedOptions, format_speed, measure_speed, write_speed
from .codecs import list_decoders
from .data import LIMB_JOINTS
from .data.cutoff import CUT_LEVELS
from .demo import SHIPPED, DemoOptions, WeightsChoice, launch_app
from .engine.eval_run import run_eval
from .engine.options import EvalDataSpec, EvalOptions, EvalSettings
from .engine.train import train
from .engine.train_config import read_yaml
from .explain import ExplainOptions, run_explain
from .export.int8 import CalibrationDataRequired, Int8Options, quantize_model
from .export.onnx_export import ExportOptions, run_export
from .factory import load_pose_model, shipped_weights
from .inference.draw import MIN_DRAWN_PERSON_SCORE
from .inference.end_to_end import run_detected_eval
from .inference.options import DetectorOptions, OutputOptions, PredictOptions, PredictorOptions, TrackingOptions
from .inference.predict_job import run_predict, summary_notes
from .models.checkpoint import save_released_layout, save_weights
from .models.complexity import format_info, model_info
from .utils.oserrors import describe_os_error
from .utils.sizes import parse_size
from .weights.tables import format_weights_table

__all__ = ["build_parser", "main", "parse_size"]

# the flags' defaults are the options objects' (each default lives in one place)
_PREDICTOR, _DETECTOR, _PREDICT = PredictorOptions(), DetectorOptions(), PredictOptions()
_EXPLAIN, _EXPORT, _EVAL = ExplainOptions(), ExportOptions(), EvalOptions()


def _cmd_info(args: argparse.Namespace) -> int:
    print(format_info(model_info(args.model, input_size=args.input_size, batch=1, memory=not args.no_memory)))
    print()
    print(format_weights_table(args.model))
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    print(format_weights_table(args.model, markdown=args.markdown))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.config is None:
        raise ValueError("give a training config, e.g. `tpose train configs/mixed_r_a4_128x96.yaml` (key=value "
                         "overrides after it are optional, e.g. train.epochs=10)")
    result = train(args.config, args.overrides, device=args.device, resume=not args.no_resume,
                   progress=not args.no_progress)
    print(f"{result.status}: {result.epochs_done} epochs in {result.output_dir}; "
          f"best {_rounded(result.best_metric)} at epoch {result.best_epoch}")
    return 0


def _rounded(value: object) -> object:
    """A metric as people read it (0.1492, not 0.14919354838709678); anything else unchanged."""
    return f"{value:.4f}" if isinstance(value, float) else value


def _fraction(flag: str) -> Any:
    """An argparse type for a value in 0..1, naming ``flag`` and the range when it is outside."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{flag} must lie in 0..1, got {text}")
        return value
    return parse


def _positive_int(text: str) -> int:
    """An argparse type for counts such as ``--threads``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = text.split(",")
        return float(x), float(y)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y such as 120,80, got {text!r}") from None


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in text.split(","))
        return x, y, w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h such as 10,20,100,200, got {text!r}") from None


def _model_and_weights(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``--model`` and ``--weights`` as given; with neither, the weights shipped inside the package (no download).

    A ``--model`` name with no ``--weights`` uses that variant's shipped weights when it has any; the loader
    (``tpose.load_pose_model``) refuses a ``--model`` that the weights contradict.
    """
    model, weights = getattr(args, "model", None), args.weights
    if weights:
        return model, weights
    try:
        return None, str(shipped_weights(model))
    except FileNotFoundError:
        print(f"tpose: no --weights given and no weights ship with {model}: using random weights "
              "(see `tpose weights`)", file=sys.stderr)
        return model, None


def _detector_options(args: argparse.Namespace) -> DetectorOptions:
    """``--detector`` / ``--whole-image`` / ``--det-size`` / ``--det-threshold`` as one object."""
    defaults = DetectorOptions()
    return DetectorOptions(None if getattr(args, "whole_image", False) else args.detector,
                           getattr(args, "det_size", defaults.size), getattr(args, "det_threshold", defaults.threshold))


def _predictor_options(args: argparse.Namespace, **chosen: Any) -> PredictorOptions:
    """The predictor flags a subcommand has (the others keep their defaults); ``chosen`` overrides them."""
    given = {f.name: getattr(args, f.name) for f in fields(PredictorOptions) if getattr(args, f.name, None) is not None}
    return replace(PredictorOptions(**given), **chosen)


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cmd_predict(args: argparse.Namespace) -> int:
    model, weights = _model_and_weights(args)
    source = args.input[0] if len(args.input) == 1 else args.input  # one folder/video, or a list of images
    options = PredictOptions(
        predictor=_predictor_options(args, nms_threshold=args.nms or None),
        flip_test=False if args.no_flip else True if args.flip else None, precision=args.precision,
        detector=_detector_options(args), detections=args.detections, det_gt=args.det_gt,
        min_box_score=args.min_box_score,
        output=OutputOptions(save_images=not args.no_images, save_json=not args.no_json,
                             coco_results=args.coco_results, draw_threshold=args.draw_threshold,
                             draw_boxes=args.draw_boxes),
        tracking=TrackingOptions(detect_every=args.detect_every, track=not args.no_track, smooth=not args.no_smooth,
                                 max_lost_frames=args.max_lost_frames, smooth_min_cutoff=args.smooth_min_cutoff,
                                 smooth_beta=args.smooth_beta),
        max_frames=args.max_frames, progress=not args.no_progress,
    )
    summary = run_predict(source, args.output_dir, model, weights, options)
    unit = "frame(s)" if "frames" in summary else "file(s)"
    print(f"processed {summary['processed']} {unit}, {summary['persons']} person(s) -> {args.output_dir}")
    if summary.get("no_person"):
        names = summary["no_person"]
        print(f"no person found in {len(names)} image(s): {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}",
              file=sys.stderr)
    for item in summary.get("skipped", []):
        print(f"skipped {item['file']}: {item['reason']}", file=sys.stderr)
    if summary.get("unmatched"):
        shown = ", ".join(summary["unmatched"][:5]) + (" ..." if len(summary["unmatched"]) > 5 else "")
        print(f"no detections for {len(summary['unmatched'])} image(s) (their image id is not in {args.detections}): "
              f"{shown}", file=sys.stderr)
    if summary.get("without_detections"):
        names = summary["without_detections"]
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        print(f"{len(names)} image(s) have no record in {args.detections}: {shown}", file=sys.stderr)
    empty = (summary.get("dropped_boxes") or {}).get("empty") or []
    if empty:
        print(f"dropped {len(empty)} box(es) of zero or negative size from {args.detections} (records "
              f"{', '.join(str(i) for i in empty[:10])}{' ...' if len(empty) > 10 else ''})", file=sys.stderr)
    if summary.get("error"):
        print(f"tpose predict: error: {summary['error']}", file=sys.stderr)
    for note in summary_notes(summary):  # renamed outputs, earlier outputs left out, Ctrl-C
        print(f"tpose predict: {note}", file=sys.stderr)
    return int(summary["status"])


def _cmd_explain(args: argparse.Namespace) -> int:
    layers: object = args.layers
    if layers not in ("last", "all"):
        layers = [int(v) for v in str(layers).split(",")]
    model, weights = _model_and_weights(args)
    options = ExplainOptions(
        box=args.boxes if args.boxes else (args.box or None), min_box_score=args.min_box_score,
        detector=_detector_options(args), layers=layers,  # type: ignore[arg-type]
        heads=args.heads if args.heads in ("mean", "all") else int(args.heads), threshold=args.threshold,
        affected=args.affected or None, html=args.html, gradient=args.gradient, positions=not args.no_positions,
        tile_scale=args.tile_scale, device=args.device, keypoint_set=args.keypoint_set,
    )
    summary = run_explain(args.input, args.output_dir, model, weights, options)
    print(f"explanations written to {args.output_dir}")
    if args.verbose:
        _print_json(summary)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    _, weights = _model_and_weights(args)
    if weights is None:
        raise ValueError("tpose eval needs --weights (a tag, a weights file or an .onnx export)")
    data = EvalDataSpec(args.data, args.root, args.first, args.last, args.image_ids, args.ann_file, args.image_dir,
                        cut_at=args.cut_at, cut_keep_pixels=args.cut_keep_pixels)
    settings = EvalSettings(flip_test=not args.no_flip, decode=args.decode, precision=args.precision,
                            joint_subset=LIMB_JOINTS if args.limbs else None)
    options = EvalOptions(settings=settings, metric=args.metric, detections=args.detections,
                          min_box_score=args.min_box_score, device=args.device, backend=args.backend,
                          input_size=args.input_size, batch_size=args.batch_size, results=args.results,
                          report_json=args.report, progress=not args.no_progress)
    if args.detector is not None:  # end to end: the predictor finds the people, annotated persons are matched
        if args.detections or args.metric not in (None, "pck"):
            raise ValueError("--detector scores PCK of the persons the predictor finds: leave out "
                             "--detections / --metric (or drop --detector to score a detections file)")
        report = run_detected_eval(weights, data, options, _detector_options(args))
    else:
        report = run_eval(weights, data, options)
    print(report["summary"])
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    model, weights = _model_and_weights(args)
    if args.format in ("pth", "safetensors"):
        if weights is None or (args.format == "safetensors" and args.output is None):
            raise ValueError(f"tpose export --format {args.format} needs --weights"
                             + (" and -o (the new file's name)" if args.format == "safetensors" else ""))
        loaded = load_pose_model(model, weights, backend="torch")
        default = Path.cwd() / (Path(loaded.weights or loaded.name).stem + f".{args.format}")
        out = Path(args.output) if args.output else default
        if args.format == "pth":
            save_released_layout(loaded.model, out)
            print(f"wrote {out} (plain state dict in the released TransPose layout)")
            return 0
        carried = {k: v for k, v in loaded.metadata.items() if k not in ("model", "storage_dtype", "weights_file")}
        carried["exported_from"] = str(loaded.weights)
        storage = torch.float16 if args.half else None
        save_weights(loaded.model, out, carried, storage_dtype=storage, keypoint_set=loaded.keypoint_set)
        size = out.stat().st_size / 1e6
        print(f"wrote {out} ({size:.1f} MB, {'float16' if storage else 'float32'} storage) and its .json")
        return 0
    int8 = _int8_data(args) if args.int8 else None  # checked before the export, which takes a while
    options = ExportOptions(input_size=args.input_size, opset=args.opset, attention=args.attention,
                            keypoint_set=args.keypoint_set, verify=not args.no_verify,
                            verify_images=args.verify_images, tolerance_px=args.tolerance)
    summary = run_export(model, args.output, weights, options)
    check = summary.get("check") or {}
    print(f"wrote {summary['output']} ({summary['bytes'] / 1e6:.1f} MB, opset {summary['opset']}, "
          f"input {summary['input']['shape']})")
    if check:
        print("checked against PyTorch: " + ", ".join(f"{k}={v}" for k, v in check.items() if k != "images"))
    if int8 is None:
        return 0
    calibration, validation, int8_options = int8
    report = quantize_model(summary["output"], Path(summary["output"]).with_name(
        Path(summary["output"]).stem + "_int8.onnx"), calibration=calibration, validation=validation,
        options=int8_options, progress=None if args.no_progress else print)
    print(report.summary())
    return 0 if report.passed in (True, None) else 1


def _int8_data(args: argparse.Namespace) -> tuple[object, object, Int8Options]:
    """Calibration and validation data of ``--int8`` (folders/images, or a YAML of data set specs) and the
    options: ``--calibration-count`` / ``--int8-tolerance``, else the YAML's, else the defaults."""
    def read(value: str | None, key: str) -> object:
        if value is None:
            return None
        path = Path(value)
        if path.suffix in (".yaml", ".yml"):
            data = read_yaml(path.read_text()) or {}
            if key not in data:
                raise ValueError(f"{path}: no {key}: list of data set specs (see configs/int8_r_a4_128x96.yaml)")
            return data[key]
        return str(path)  # a folder or an image file: whole-image person crops

    if args.calibration is None:
        raise CalibrationDataRequired("tpose export --int8 needs --calibration: a folder of person images, or a YAML "
                                      "with calibration: (and validation:) data set specs, e.g. "
                                      "configs/int8_r_a4_128x96.yaml; calibrate on training data only")
    calibration = read(args.calibration, "calibration")
    validation = read(args.validation, "validation") if args.validation else None
    if validation is None and Path(args.calibration).suffix in (".yaml", ".yml"):
        validation = (read_yaml(Path(args.calibration).read_text()) or {}).get("validation")
    if validation is None:
        raise ValueError("tpose export --int8 needs --validation (persons to measure PCK@0.2 of fp32 vs int8 on: a "
                         "YAML with validation: data set specs), or a --calibration YAML that has validation: too")
    data = read_yaml(Path(args.calibration).read_text()) if Path(args.calibration).suffix in (".yaml", ".yml") else {}
    return calibration, validation, Int8Options.from_data(data, args.calibration_count, args.int8_tolerance)


def _cmd_bench(args: argparse.Namespace) -> int:
    """The speed of one model here; the project's benchmarks are ``python benchmarks/bench_<name>.py``."""
    options = SpeedOptions(model=args.model, weights=args.weights, input_size=args.input_size,
                           batch=tuple(args.batch), precision=args.precision, paths=tuple(args.path),
                           threads=args.threads, repeats=args.repeats, device=args.device)
    report = measure_speed(options, say=None if args.quiet else lambda msg: print(msg, file=sys.stderr))
    print(format_speed(report))
    if args.json:
        print(f"wrote {write_speed(report, args.json)}")
    return 0


def _add_common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="variant name (default: the one the weights hold); with a released .pth or a "
                   "tag it names the variant, and must match the weights")
    p.add_argument("--weights", help="a registry tag (see tpose weights), a .safetensors/.pth file or an .onnx "
                   "export (default: the shipped weights)")
    p.add_argument("--device", default=_PREDICTOR.device, help="cpu, cuda, cuda:N or auto")
    p.add_argument("--keypoint-set", help="coco17, lsp14, mpii16 or a YAML/JSON file (default: from the weights)")


def _add_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default=_DETECTOR.detector,
                   help="who finds the people when no boxes are given: auto (YOLOX-Nano, fetched once into the "
                        "torch hub cache; TPOSE_DETECTOR=/path/to/yolox_nano.onnx points at a local copy), a YOLOX "
                        ".onnx file, or none (the whole image is one person)")
    p.add_argument("--whole-image", action="store_true", help="no detector: the whole image is one person")
    p.add_argument("--det-size", type=int, default=_DETECTOR.size,
                   help="detector input side (multiple of 32: 320 faster, 640 for small people; default 416)")
    p.add_argument("--det-threshold", type=_fraction("--det-threshold"), default=_DETECTOR.threshold,
                   help="keep detections scoring at least this")


def _add_video_args(p: argparse.ArgumentParser) -> None:
    defaults = TrackingOptions()
    p.add_argument("--detect-every", type=_positive_int, default=defaults.detect_every,
                   help="videos: run the detector on every n-th frame; the poses carry the boxes in between")
    p.add_argument("--no-track", action="store_true", help="videos: no person ids across frames")
    p.add_argument("--no-smooth", action="store_true", help="videos: no One-Euro smoothing of the keypoints")
    p.add_argument("--max-lost-frames", type=int, default=defaults.max_lost_frames,
                   help="videos: a person unseen for more frames than this gets a new id when seen again")
    p.add_argument("--smooth-min-cutoff", type=float, default=defaults.smooth_min_cutoff,
                   help="One-Euro cutoff at rest, Hz (lower: smoother, more lag)")
    p.add_argument("--smooth-beta", type=float, default=defaults.smooth_beta,
                   help="One-Euro speed coefficient (higher: less lag when moving)")
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many frames (a camera runs until stopped)")


def _cmd_demo(args: argparse.Namespace) -> int:
    defaults = DemoOptions()
    extra = tuple(WeightsChoice(Path(w).name, model=w) for w in args.weights or ())
    detector = None if args.whole_image or str(args.detector).lower() == "none" else args.detector
    launch_app(DemoOptions(host=args.host, port=args.port, detector=detector, weights=defaults.weights + extra))
    return 0


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    defaults = DemoOptions()
    p = sub.add_parser("demo", help='the web app: your photos, videos and camera with the attention explorer '
                       '(pip install "tpose[demo]"; works offline)')
    p.add_argument("--host", default=defaults.host, help="address to serve on (default loopback only)")
    p.add_argument("--port", type=int, default=defaults.port)
    p.add_argument("--weights", action="append", help="one more weights file in the app's list (repeatable): "
                   f".safetensors, .pth or .onnx such as an int8 export; {SHIPPED.label!r} is first")
    p.add_argument("--detector", default=defaults.detector, help="auto (YOLOX-Nano: TPOSE_DETECTOR or the cache; "
                   "never downloaded by the app), a YOLOX .onnx file, or none (the whole image)")
    p.add_argument("--whole-image", action="store_true", help="no detector: the whole image is one person")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tpose", description="TransPose keypoint localization and explanation")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="parameters, multiply-adds, tokens and peak memory of a model")
    p.add_argument("model")
    p.add_argument("--input-size", type=parse_size, default=(256, 192), help="HxW (default 256x192)")
    p.add_argument("--no-memory", action="store_true", help="skip the forward pass that measures peak memory")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("weights", help="the weights that exist for each model: tag, source, accuracy, licence")
    p.add_argument("model", nargs="?", help="only this variant")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("train", help="train a model from a YAML config (works under torchrun for DDP)")
    p.add_argument("config", nargs="?", help="the YAML config, e.g. configs/mixed_r_a4_128x96.yaml (see the README)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=10 train.lr=3e-4")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", action="store_true", help="start over even if output_dir has last.ckpt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="poses for an image, a folder or a video: JSON plus drawn images/video")
    p.add_argument("input", nargs="+", help="image(s), a folder, a video file, or a camera (webcam:0)")
    p.add_argument("-o", "--output-dir", default="outputs/predict")
    _add_common_model_args(p)
    p.add_argument("--detections", help="COCO detection-results JSON with person boxes (default: the detector)")
    _add_detector_args(p)
    _add_video_args(p)
    p.add_argument("--det-gt", help="COCO annotation JSON naming the images of --detections")
    p.add_argument("--min-box-score", type=_fraction("--min-box-score"), default=_PREDICT.min_box_score)
    p.add_argument("--nms", type=_fraction("--nms"), default=_PREDICTOR.nms_threshold,
                   help="OKS-NMS threshold of detected persons, 0..1 (0 = off)")
    p.add_argument("--draw-threshold", type=_fraction("--draw-threshold"), default=_PREDICT.output.draw_threshold,
                   help="draw keypoints scoring at least this (0..1); persons with fewer than 2 such keypoints, "
                        f"or scoring below {MIN_DRAWN_PERSON_SCORE} on a photo, are not drawn (README: Videos)")
    p.add_argument("--no-flip", action="store_true", help="no flip test (about 2x faster; the default for videos)")
    p.add_argument("--flip", action="store_true", help="flip test also for videos and cameras")
    p.add_argument("--no-images", action="store_true")
    p.add_argument("--no-json", action="store_true")
    p.add_argument("--coco-results", help="also write a COCO keypoint results JSON here")
    p.add_argument("--batch-size", type=_positive_int, default=_PREDICTOR.batch_size)
    p.add_argument("--input-size", type=parse_size, help="HxW crop size (default: the model's)")
    p.add_argument("--decode", choices=list_decoders(), default="dark")
    p.add_argument("--draw-boxes", action="store_true")
    p.add_argument("--backend", choices=("torch", "onnx", "onnxruntime"),
                   help="torch or onnxruntime (default: onnxruntime for an .onnx --weights, else torch)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default=_PREDICT.precision,
                   help="auto: fp32 for images; for videos and cameras the fastest path measured within 0.005 "
                        "PCK@0.2 of fp32 (the int8 model shipped with the weights, else bf16 where the CPU has it "
                        "natively, else fp32). bf16: PyTorch autocast, fast only with native bf16. int8: the "
                        "shipped weights' int8 model (other weights: export one with tpose export --int8 and pass "
                        "the .onnx)")
    p.add_argument("--threads", type=_positive_int,
                   help="torch threads, at least 1 (default: the cores other processes leave free)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("explain", help="attention maps that explain each predicted keypoint (PNG, .npy, HTML)")
    p.add_argument("input", help="an image")
    p.add_argument("-o", "--output-dir", default="outputs/explain")
    _add_common_model_args(p)
    p.add_argument("--box", type=_box, action="append",
                   help="person box x,y,w,h (repeatable; default: the detector's boxes, see --detector)")
    p.add_argument("--boxes", help="COCO detection-results JSON with the person boxes")
    p.add_argument("--detector", default=_DETECTOR.detector,
                   help="without boxes: auto (YOLOX-Nano), a YOLOX .onnx file, or none (the whole image)")
    p.add_argument("--whole-image", action="store_true", help="no detector: the whole image is one person")
    p.add_argument("--min-box-score", type=_fraction("--min-box-score"), default=_EXPLAIN.min_box_score)
    p.add_argument("--layers", default=_EXPLAIN.layers, help="last, all, or comma-separated layer indices")
    p.add_argument("--heads", default=_EXPLAIN.heads, help="mean, all, or one head index")
    p.add_argument("--threshold", type=float, default=_EXPLAIN.threshold,
                   help="hide attention below this (0 = show all)")
    p.add_argument("--affected", type=_point, action="append", help="image point x,y whose affected area to draw")
    p.add_argument("--html", help="write the interactive page here")
    p.add_argument("--gradient", action="store_true", help="also run the gradient analysis (supplementary D)")
    p.add_argument("--no-positions", action="store_true", help="skip the position-embedding similarity figure")
    p.add_argument("--tile-scale", type=float, default=_EXPLAIN.tile_scale)
    p.add_argument("-v", "--verbose", action="store_true", help="print the summary of written files")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("export", help="ONNX (checked against PyTorch) or the released .pth layout")
    p.add_argument("model", nargs="?", help="variant name (default: the one the weights hold)")
    p.add_argument("--weights", help="a registry tag or a file (default: the shipped weights)")
    p.add_argument("--format", choices=("onnx", "pth", "safetensors"), default="onnx",
                   help="onnx, the released .pth layout, or tpose .safetensors + .json (metadata carried over)")
    p.add_argument("--half", action="store_true",
                   help="with --format safetensors: store float16 (half the size; loads back as float32)")
    p.add_argument("-o", "--output", help="output file (default: <weights name>_<H>x<W>.onnx in the working folder)")
    p.add_argument("--input-size", type=parse_size, help="HxW fixed at export (default: the model's)")
    p.add_argument("--opset", type=int, default=_EXPORT.opset)
    p.add_argument("--attention", nargs="?", const="heads", default=_EXPORT.attention,
                   help="also output every layer's attention maps, per head (what explain needs) or 'mean'")
    p.add_argument("--keypoint-set")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--verify-images", nargs="*",
                   help="images (or a folder) for the comparison (default: a real photo shipped with tpose)")
    p.add_argument("--tolerance", type=float, default=_EXPORT.tolerance_px,
                   help="max decoded-keypoint difference, in heatmap pixels")
    p.add_argument("--int8", action="store_true", help="also write <name>_int8.onnx: static int8 quantization "
                   "(ONNX Runtime), calibrated on --calibration and gated by the PCK@0.2 it loses on --validation")
    p.add_argument("--calibration", help="with --int8: a folder of person images (each one person), or a YAML "
                   "with calibration: [data set specs] (and validation:), e.g. configs/int8_r_a4_128x96.yaml")
    p.add_argument("--validation", help="with --int8: a YAML with validation: [data set specs] (default: the "
                   "--calibration YAML's)")
    p.add_argument("--calibration-count", type=int, help="crops drawn for calibration (default 512)")
    p.add_argument("--int8-tolerance", type=float, help="PCK@0.2 the int8 file may lose (default 0.005)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench", help="how fast a model runs on this machine: ms per batch and images/s at a size, "
                       "batch, precision and path (the project's benchmarks: python benchmarks/bench_<name>.py)")
    p.add_argument("--model", help="variant name (alone: its random initial weights, as fast as trained ones)")
    p.add_argument("--weights", help="a tag, a .safetensors/.pth file or an .onnx export, int8 included "
                   "(default: the shipped weights)")
    p.add_argument("--input-size", type=parse_size, help="HxW (default: the model's own)")
    p.add_argument("--batch", nargs="+", type=int, default=list(SpeedOptions.batch), help="batch sizes (default: 1)")
    p.add_argument("--precision", choices=PRECISIONS, default=SpeedOptions.precision,
                   help="bf16: autocast on the torch paths, fast only with native bf16 (default: fp32)")
    p.add_argument("--path", nargs="+", choices=BENCH_PATHS, default=list(SpeedOptions.paths),
                   help="torch (default), torch_cl (channels_last), compile (torch.compile), onnxruntime")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads, at least 1 (default: usable cores)")
    p.add_argument("--repeats", type=int, default=SpeedOptions.repeats,
                   help="timed calls per path and batch (median; default %(default)s)")
    p.add_argument("--device", default=SpeedOptions.device, help="cpu, cuda[:n] or auto (default cpu)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="print the table only")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("eval", help="PCK / COCO AP of weights on LSPET or COCO-format data")
    p.add_argument("--weights",
                   help="a tag, a .safetensors/.pth file or an .onnx export (default: the shipped weights)")
    p.add_argument("--data", choices=("lspet", "lsp", "coco"), default=EvalDataSpec().data,
                   help="lspet / lsp (joints.mat + images/ under --root) or any COCO-format keypoint file")
    p.add_argument("--root", help="LSPET or LSP folder (joints.mat, images/)")
    p.add_argument("--first", type=int, help="first image number (LSPET default: 9001, its validation part)")
    p.add_argument("--last", type=int, help="last image number (LSPET default: 10000)")
    p.add_argument("--image-ids", help="a text file of image ids (one per line) to evaluate on, e.g. a split file")
    p.add_argument("--ann-file", help="COCO-format keypoint annotation JSON (any keypoint set it names)")
    p.add_argument("--image-dir", help="folder of the COCO images")
    p.add_argument("--cut-at", choices=tuple(CUT_LEVELS),
                   help="persons cut off by the photo's lower edge: end each upright person's image at the chest "
                        "or just below the hips (joints below are not scored)")
    p.add_argument("--cut-keep-pixels", action="store_true",
                   help="the control of --cut-at: its boxes and scored joints, but the pixels below left in")
    p.add_argument("--detections", help="COCO detection-results JSON: evaluate with detector boxes")
    p.add_argument("--detector", nargs="?", const="auto",
                   help="end to end: the predictor finds the people (YOLOX-Nano, or this .onnx), annotated persons "
                        "are matched at IoU >= 0.5, PCK of each matched one, 0 for a missed one")
    p.add_argument("--det-size", type=int, default=_DETECTOR.size,
                   help="with --detector: its input side (multiple of 32)")
    p.add_argument("--det-threshold", type=_fraction("--det-threshold"), default=_DETECTOR.threshold,
                   help="with --detector: keep boxes scoring this")
    p.add_argument("--min-box-score", type=_fraction("--min-box-score"), default=_EVAL.min_box_score)
    p.add_argument("--metric", choices=("pck", "pckh", "coco"))
    p.add_argument("--limbs", action="store_true", help="PCK over the 12 limb joints COCO and LSP share")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--decode", choices=list_decoders(), default="dark")
    p.add_argument("--input-size", type=parse_size)
    p.add_argument("--batch-size", type=_positive_int, default=_EVAL.batch_size)
    p.add_argument("--device", default=_EVAL.device)
    p.add_argument("--backend", choices=("torch", "onnx", "onnxruntime"),
                   help="default: onnxruntime for an .onnx --weights, else torch")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=_EVAL.settings.precision,
                   help="torch path: bf16 autocast")
    p.add_argument("--results", help="write the COCO results JSON here")
    p.add_argument("--report", help="write the report JSON here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_eval)
    _add_demo_parser(sub)
    return parser


# flags that contradict each other: (subcommand, flag given, flags it cannot go with)
_CONFLICTS = (
    ("predict", "whole_image", ("detections",)),
    ("explain", "whole_image", ("box", "boxes")),
    ("explain", "box", ("boxes",)),
)


def _check_conflicts(args: argparse.Namespace) -> None:
    """A usage error (exit 2) for flags of which one would be silently ignored."""
    for command, flag, others in _CONFLICTS:
        if args.command != command or not getattr(args, flag, None):
            continue
        for other in others:
            if getattr(args, other, None):
                a, b = "--" + flag.replace("_", "-"), "--" + other.replace("_", "-")
                print(f"tpose {command}: error: {a} and {b} contradict each other (one would be ignored): give "
                      "one of them", file=sys.stderr)
                raise SystemExit(2)


def _flag_of(args: argparse.Namespace, path: object) -> str | None:
    """The flag whose value is ``path`` or a folder above it (the one to change when writing there failed)."""
    if path is None:
        return None
    target = Path(str(path)).absolute()
    for dest, value in vars(args).items():
        if not isinstance(value, str) or dest in ("command", "func"):
            continue
        given = Path(value).absolute()
        if target == given or given in target.parents:
            return "-o" if dest in ("output_dir", "output") else "--" + dest.replace("_", "-")
    return None


_WRITE_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOTDIR)


def _os_error_message(args: argparse.Namespace, err: OSError) -> str:
    """An OS error that no inner layer explained: the file, what went wrong and the flag to change."""
    flag = _flag_of(args, err.filename)
    if flag is None and args.command == "train" and err.errno in _WRITE_ERRORS:
        return describe_os_error(err, "set output_dir in the config, or override it (output_dir=runs/mine), to a "
                                      "folder you can write to")
    if flag is None:
        return describe_os_error(err)
    fixes = {errno.EACCES: f"give {flag} a folder you can write to (or change its permissions)",
             errno.EPERM: f"give {flag} a folder you can write to", errno.EROFS: f"give {flag} a writable disk",
             errno.ENOSPC: f"free some space, or give {flag} a path on another disk",
             errno.ENOTDIR: f"give {flag} a path that is not inside a file", errno.EISDIR: f"give {flag} a file"}
    return describe_os_error(err, fixes.get(err.errno or -1, f"check {flag}"))


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """Python warnings as ``tpose: warning: ...`` without the source line that the default format adds."""
    return f"tpose: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_conflicts(args)
    # OpenCV errors only: its WARN lines (codec probing, a cut video) repeat what tpose reports itself
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    shown, warnings.formatwarning = warnings.formatwarning, _one_line_warning  # type: ignore[assignment]
    try:
        return int(args.func(args) or 0)
    except OSError as exc:  # weights downloads, the weights cache, outputs that cannot be written
        print(f"tpose {args.command}: error: {_os_error_message(args, exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:  # ConfigError, CheckpointError included
        print(f"tpose {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tpose {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown  # type: ignore[assignment]


if __name__ == "__main__":
    sys.exit(main())
