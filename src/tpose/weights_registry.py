"""Deprecated: the weights registry moved to ``tpose.weights``; this module re-exports it for one release."""

import warnings

from .weights.files import default_tag, get_weights, local_file, package_file, shipped_tag, variants_with_weights
from .weights.registry import (
    ENV_BASE_URL,
    ENV_OFFLINE,
    SOURCES,
    Accuracy,
    WeightsEntry,
    base_url,
    list_weights,
    offline_mode,
    register_weights,
    tags,
    unregister_weights,
)
from .weights.tables import format_weights_table, resolved_accuracy, summarise_accuracy, weights_status

warnings.warn("tpose.weights_registry is deprecated: use tpose.weights", DeprecationWarning, stacklevel=2)

__all__ = [
    "ENV_BASE_URL",
    "ENV_OFFLINE",
    "SOURCES",
    "Accuracy",
    "WeightsEntry",
    "base_url",
    "default_tag",
    "format_weights_table",
    "get_weights",
    "list_weights",
    "local_file",
    "offline_mode",
    "package_file",
    "register_weights",
    "resolved_accuracy",
    "shipped_tag",
    "summarise_accuracy",
    "tags",
    "unregister_weights",
    "variants_with_weights",
    "weights_status",
]
