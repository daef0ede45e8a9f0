"""Image sizes as the command line writes them: ``HxW`` (height first, as every size in tpose)."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """``256x192`` -> (256, 192) as (H, W); both must be positive integers."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x192, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive HxW such as 256x192, got {text!r}")
    return h, w


def format_size(size: tuple[int, int]) -> str:
    """(256, 192) -> ``256x192``."""
    return f"{int(size[0])}x{int(size[1])}"
