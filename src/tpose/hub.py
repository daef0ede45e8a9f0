"""Deprecated: weights downloads moved to ``tpose.weights`` (and ``tpose.create_model(name, weights=...)``).

This module re-exports the former names for one release.
"""

import warnings

from .factory import load_pretrained
from .factory import resolve_weights_path as resolve_weights_arg
from .weights.download import (
    ENV_TIMEOUT,
    WeightsDownloadError,
    WeightsUnavailableError,
    download_weights,
    model_for,
    offline_help,
    resolve_weights,
    verify_weights,
)
from .weights.files import ENV_WEIGHTS_DIR, cache_dir, cache_path, find_local

warnings.warn("tpose.hub is deprecated: use tpose.weights (downloads) and tpose.create_model(name, weights=...)",
              DeprecationWarning, stacklevel=2)

__all__ = [
    "ENV_TIMEOUT",
    "ENV_WEIGHTS_DIR",
    "WeightsDownloadError",
    "WeightsUnavailableError",
    "cache_dir",
    "cache_path",
    "download_weights",
    "find_local",
    "load_pretrained",
    "model_for",
    "offline_help",
    "resolve_weights",
    "resolve_weights_arg",
    "verify_weights",
]
