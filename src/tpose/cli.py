"""The ``tpose`` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def parse_size(text: str) -> tuple[int, int]:
    """``256x192`` -> (256, 192) as (H, W)."""
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x192, got {text!r}") from None


def _cmd_info(args: argparse.Namespace) -> int:
    from .models.complexity import format_info, model_info
    from .weights_registry import format_weights_table

    print(format_info(model_info(args.model, input_size=args.input_size, batch=1, memory=not args.no_memory)))
    print()
    print(format_weights_table(args.model))
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from .weights_registry import format_weights_table

    print(format_weights_table(args.model, markdown=args.markdown))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine.train import train

    result = train(args.config, args.overrides, device=args.device, resume=not args.no_resume,
                   progress=not args.no_progress)
    print(f"{result.status}: {result.epochs_done} epochs in {result.output_dir}; "
          f"best {result.best_metric} at epoch {result.best_epoch}")
    return 0


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


def _weights(args: argparse.Namespace) -> str | None:
    """``--weights`` as a file path: a path, a registry tag of ``--model``, or the shipped weights.

    With no ``--weights``, the weights shipped inside the package are used, so nothing is downloaded.
    """
    from .hub import resolve_weights_arg
    from .weights_registry import shipped_tag

    model = getattr(args, "model", None) or "transpose_r_a4"
    if args.weights:
        return str(resolve_weights_arg(args.weights, model))
    tag = shipped_tag(model)
    if tag is None:
        print(f"tpose: no --weights given and no weights ship with {model}: using random weights "
              "(see `tpose weights`)", file=sys.stderr)
        return None
    return str(resolve_weights_arg(f"{model}:{tag}", model))


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def _cmd_predict(args: argparse.Namespace) -> int:
    from .inference.predictor import run_predict

    weights = _weights(args)
    source = args.input[0] if len(args.input) == 1 else args.input  # one folder/video, or a list of images
    summary = run_predict(
        source, args.output_dir, model=weights or args.model, weights=None, detections=args.detections,
        det_gt=args.det_gt, min_box_score=args.min_box_score, nms_threshold=args.nms or None,
        draw_threshold=args.draw_threshold, device=args.device, flip_test=not args.no_flip,
        save_images=not args.no_images, save_json=not args.no_json, coco_results=args.coco_results,
        batch_size=args.batch_size, progress=not args.no_progress, keypoint_set=args.keypoint_set,
        input_size=args.input_size, decode=args.decode, draw_boxes=args.draw_boxes, backend=args.backend,
    )
    print(f"processed {summary['processed']} file(s), {summary['persons']} person(s) -> {args.output_dir}")
    for item in summary.get("skipped", []):
        print(f"skipped {item['file']}: {item['reason']}", file=sys.stderr)
    return 1 if summary["processed"] == 0 or summary.get("skipped") else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import run_explain

    box: object = args.boxes if args.boxes else (args.box or None)
    layers: object = args.layers
    if layers not in ("last", "all"):
        layers = [int(v) for v in str(layers).split(",")]
    heads: object = args.heads if args.heads in ("mean", "all") else int(args.heads)
    weights = _weights(args)
    summary = run_explain(
        args.input, args.output_dir, model=weights or args.model, weights=None, box=box, layers=layers, heads=heads,
        threshold=args.threshold, affected=args.affected or None, html=args.html, gradient=args.gradient,
        device=args.device, keypoint_set=args.keypoint_set, min_box_score=args.min_box_score,
        positions=not args.no_positions, tile_scale=args.tile_scale,
    )
    print(f"explanations written to {args.output_dir}")
    if args.verbose:
        _print_json(summary)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .engine.eval_run import run_eval

    weights = _weights(args)
    if weights is None:
        raise ValueError("tpose eval needs --weights (a .safetensors file written by tpose train)")
    report = run_eval(
        weights, data=args.data, root=args.root, first=args.first, last=args.last, image_ids=args.image_ids,
        ann_file=args.ann_file,
        image_dir=args.image_dir, detections=args.detections, min_box_score=args.min_box_score, metric=args.metric,
        limbs_only=args.limbs, flip_test=not args.no_flip, decode=args.decode, input_size=args.input_size,
        batch_size=args.batch_size, device=args.device, results=args.results, report_json=args.report,
        progress=not args.no_progress,
    )
    print(report["summary"])
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    weights = _weights(args)
    if args.format == "pth":
        from .models.checkpoint import load_model, save_released_layout

        if weights is None:
            raise ValueError("tpose export --format pth needs --weights")
        out = args.output or str(Path(weights).with_suffix(".pth"))
        save_released_layout(load_model(weights), out)
        print(f"wrote {out} (plain state dict in the released TransPose layout)")
        return 0
    if args.format == "safetensors":
        import torch

        from .models.checkpoint import load_model, save_weights

        if weights is None or args.output is None:
            raise ValueError("tpose export --format safetensors needs --weights and -o")
        model = load_model(weights)
        carried = {k: v for k, v in (model.metadata or {}).items() if k not in ("model", "storage_dtype")}
        carried["exported_from"] = str(weights)
        storage = torch.float16 if args.half else None
        save_weights(model, args.output, carried, storage_dtype=storage)
        size = Path(args.output).stat().st_size / 1e6
        print(f"wrote {args.output} ({size:.1f} MB, {'float16' if storage else 'float32'} storage) and its .json")
        return 0
    from .export.onnx_export import run_export

    summary = run_export(
        weights or args.model, output=args.output, format="onnx", input_size=args.input_size, opset=args.opset,
        attention=args.attention, keypoint_set=args.keypoint_set, verify=not args.no_verify,
        verify_images=args.verify_images, tolerance_px=args.tolerance,
    )
    check = summary.get("check") or {}
    print(f"wrote {summary['output']} ({summary['bytes'] / 1e6:.1f} MB, opset {summary['opset']}, "
          f"input {summary['input']['shape']})")
    if check:
        print("checked against PyTorch: " + ", ".join(f"{k}={v}" for k, v in check.items() if k != "images"))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run from the repository root; the benchmark's own options follow (``tpose bench -- --help``)."""
    rest = [a for a in args.rest if a != "--"]
    if args.train:
        from .bench.training import main as bench_main
    elif args.data:
        from .bench.data_pipeline import main as bench_main
    else:
        from .bench.inference import main as bench_main
    return int(bench_main(rest) or 0)


def _add_common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="transpose_r_a4", help="variant name, used when --weights is not a tpose file")
    p.add_argument("--weights", help="a registry tag (see tpose weights) or a file (default: the shipped weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--keypoint-set", help="coco17, lsp14, mpii16 or a YAML/JSON file (default: from the weights)")


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
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=10 train.lr=3e-4")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", action="store_true", help="start over even if output_dir has last.ckpt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="poses for an image, a folder or a video: JSON plus drawn images/video")
    p.add_argument("input", nargs="+", help="image(s), a folder, or a video file")
    p.add_argument("-o", "--output-dir", default="outputs/predict")
    _add_common_model_args(p)
    p.add_argument("--detections", help="COCO detection-results JSON with person boxes (default: whole image)")
    p.add_argument("--det-gt", help="COCO annotation JSON naming the images of --detections")
    p.add_argument("--min-box-score", type=float, default=0.0)
    p.add_argument("--nms", type=float, default=0.9, help="OKS-NMS threshold with --detections (0 = off)")
    p.add_argument("--draw-threshold", type=float, default=0.3, help="draw keypoints scoring at least this")
    p.add_argument("--no-flip", action="store_true", help="no flip test (about 2x faster)")
    p.add_argument("--no-images", action="store_true")
    p.add_argument("--no-json", action="store_true")
    p.add_argument("--coco-results", help="also write a COCO keypoint results JSON here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=parse_size, help="HxW crop size (default: the model's)")
    p.add_argument("--decode", choices=("dark", "argmax"), default="dark")
    p.add_argument("--draw-boxes", action="store_true")
    p.add_argument("--backend", choices=("torch", "onnx", "onnxruntime"), default="torch")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("explain", help="attention maps that explain each predicted keypoint (PNG, .npy, HTML)")
    p.add_argument("input", help="an image")
    p.add_argument("-o", "--output-dir", default="outputs/explain")
    _add_common_model_args(p)
    p.add_argument("--box", type=_box, action="append", help="person box x,y,w,h (repeatable; default whole image)")
    p.add_argument("--boxes", help="COCO detection-results JSON with the person boxes")
    p.add_argument("--min-box-score", type=float, default=0.0)
    p.add_argument("--layers", default="last", help="last, all, or comma-separated layer indices")
    p.add_argument("--heads", default="mean", help="mean, all, or one head index")
    p.add_argument("--threshold", type=float, default=0.00075, help="hide attention below this (0 = show all)")
    p.add_argument("--affected", type=_point, action="append", help="image point x,y whose affected area to draw")
    p.add_argument("--html", help="write the interactive page here")
    p.add_argument("--gradient", action="store_true", help="also run the gradient analysis (supplementary D)")
    p.add_argument("--no-positions", action="store_true", help="skip the position-embedding similarity figure")
    p.add_argument("--tile-scale", type=float, default=1.0)
    p.add_argument("-v", "--verbose", action="store_true", help="print the summary of written files")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("export", help="ONNX (checked against PyTorch) or the released .pth layout")
    p.add_argument("model", nargs="?", default="transpose_r_a4", help="variant name (with --weights)")
    p.add_argument("--weights", help="a registry tag or a file (default: the shipped weights)")
    p.add_argument("--checkpoint", dest="weights", help=argparse.SUPPRESS)
    p.add_argument("--format", choices=("onnx", "pth", "safetensors"), default="onnx",
                   help="onnx, the released .pth layout, or tpose .safetensors + .json (metadata carried over)")
    p.add_argument("--half", action="store_true",
                   help="with --format safetensors: store float16 (half the size; loads back as float32)")
    p.add_argument("-o", "--output", help="output file (default: beside the weights / in the working folder)")
    p.add_argument("--input-size", type=parse_size, help="HxW fixed at export (default: the model's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--attention", nargs="?", const="heads", default=False,
                   help="also output every layer's attention maps, per head (what explain needs) or 'mean'")
    p.add_argument("--keypoint-set")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--verify-images", nargs="*", help="images (or a folder) for the comparison")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max decoded-keypoint difference, in heatmap pixels")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench", help="inference (default), training-step (--train) or data-pipeline (--data) "
                       "benchmark: a table plus JSON/Markdown in benchmarks/results")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--train", action="store_true", help="whole training steps: reference vs default and levers")
    group.add_argument("--data", action="store_true", help="the data pipeline's samples per second")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options (see tpose bench -- --help)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("eval", help="PCK / COCO AP of weights on LSPET or COCO-format data")
    p.add_argument("--weights", help="a .safetensors written by tpose (default: the shipped weights)")
    p.add_argument("--data", choices=("lspet", "lsp", "coco"), default="lspet",
                   help="lspet / lsp (joints.mat + images/ under --root) or any COCO-format keypoint file")
    p.add_argument("--root", help="LSPET or LSP folder (joints.mat, images/)")
    p.add_argument("--first", type=int, help="first image number (LSPET default: 9001, its validation part)")
    p.add_argument("--last", type=int, help="last image number (LSPET default: 10000)")
    p.add_argument("--image-ids", help="a text file of image ids (one per line) to evaluate on, e.g. a split file")
    p.add_argument("--ann-file", help="COCO-format keypoint annotation JSON (any keypoint set it names)")
    p.add_argument("--image-dir", help="folder of the COCO images")
    p.add_argument("--detections", help="COCO detection-results JSON: evaluate with detector boxes")
    p.add_argument("--min-box-score", type=float, default=0.0)
    p.add_argument("--metric", choices=("pck", "pckh", "coco"))
    p.add_argument("--limbs", action="store_true", help="PCK over the 12 limb joints COCO and LSP share")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--decode", choices=("dark", "argmax"), default="dark")
    p.add_argument("--input-size", type=parse_size)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", help="write the COCO results JSON here")
    p.add_argument("--report", help="write the report JSON here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"tpose {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
