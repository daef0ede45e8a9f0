"""The demo web app (``tpose demo``, the optional extra ``tpose[demo]``): photos, camera snapshots and short videos
in the browser, with the attention explorer of every person; it works with no network."""

from .app import build_app, launch_app, offline_theme
from .engine import Analysis, DemoEngine, DemoInputError, PhotoResult, VideoResult
from .options import OWN_WEIGHTS, SHIPPED, SHIPPED_INT8, DemoLimits, DemoOptions, WeightsChoice

__all__ = [
    "OWN_WEIGHTS",
    "SHIPPED",
    "SHIPPED_INT8",
    "Analysis",
    "DemoEngine",
    "DemoInputError",
    "DemoLimits",
    "DemoOptions",
    "PhotoResult",
    "VideoResult",
    "WeightsChoice",
    "build_app",
    "launch_app",
    "offline_theme",
]
