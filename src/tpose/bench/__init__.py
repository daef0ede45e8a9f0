"""``tpose bench``: the speed of a model on the user's own machine (``speed``), timed interleaved (``timing``).

The project's benchmarks (comparisons with the released formulation, training steps, the data pipeline, int8,
video, the person detector) are scripts beside the package, in ``benchmarks/`` of a checkout.
"""

from .speed import PATHS, PRECISIONS, SpeedOptions, SpeedReport, SpeedRow, format_speed, measure_speed, write_speed
from .timing import interleaved, summarize

__all__ = ["PATHS", "PRECISIONS", "SpeedOptions", "SpeedReport", "SpeedRow", "format_speed", "interleaved",
           "measure_speed", "summarize", "write_speed"]
