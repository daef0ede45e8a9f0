"""Explanations of TransPose predictions: attention dependency/affected areas, gradient analysis,
position-embedding similarity and an interactive HTML page; ``run_explain`` (``tpose explain``) writes them.
"""

from .attention import (
    DEFAULT_THRESHOLD,
    AttentionResult,
    Crop,
    affected_columns,
    crop_person,
    dependency_rows,
    run_attention,
)
from .explain_job import ExplainOptions, run_explain
from .gradient import GradientCorrelation, gradient_attention_correlation
from .html_page import PageView, write_attention_page
from .position_maps import cosine_similarity_maps

__all__ = [
    "DEFAULT_THRESHOLD",
    "AttentionResult",
    "Crop",
    "ExplainOptions",
    "GradientCorrelation",
    "PageView",
    "affected_columns",
    "cosine_similarity_maps",
    "crop_person",
    "dependency_rows",
    "gradient_attention_correlation",
    "run_attention",
    "run_explain",
    "write_attention_page",
]
