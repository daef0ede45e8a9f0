"""The ``tpose`` command line: one subcommand per job, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _size(text: str) -> tuple[int, int]:
    """``256x192`` -> (256, 192) as (H, W)."""
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x192, got {text!r}") from None


def _cmd_info(args: argparse.Namespace) -> int:
    from .models.complexity import format_info, model_info

    print(format_info(model_info(args.model, input_size=args.input_size, batch=1, memory=not args.no_memory)))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine.train import train

    result = train(args.config, args.overrides, device=args.device, resume=not args.no_resume,
                   progress=not args.no_progress)
    print(f"{result.status}: {result.epochs_done} epochs in {result.output_dir}; "
          f"best {result.best_metric} at epoch {result.best_epoch}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tpose", description="TransPose keypoint localization and explanation")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="parameters, multiply-adds, tokens and peak memory of a model")
    p.add_argument("model")
    p.add_argument("--input-size", type=_size, default=(256, 192), help="HxW (default 256x192)")
    p.add_argument("--no-memory", action="store_true", help="skip the forward pass that measures peak memory")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a model from a YAML config (works under torchrun for DDP)")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=10 train.lr=3e-4")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", action="store_true", help="start over even if output_dir has last.ckpt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train)
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
