"""How many CPU cores this process may use: the one count thread defaults are derived from."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores in this process's affinity mask (a container's or taskset's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
