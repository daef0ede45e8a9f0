"""What machine a number was measured on: the CPU model and its SIMD extensions (Linux ``/proc``)."""

from __future__ import annotations

import platform
from pathlib import Path

CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16",
                "amx_tile")


def proc_field(path: str, key: str) -> str | None:
    """The text after the colon of the first line of a Linux ``/proc`` file that starts with ``key``."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    return None


def cpu_model() -> str:
    return proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def cpu_features() -> dict[str, bool]:
    """Which of the SIMD extensions relevant to fp32/bf16/int8 speed the CPU reports (``/proc/cpuinfo``)."""
    flags = proc_field("/proc/cpuinfo", "flags")
    if flags is None:
        return {}
    present = set(flags.split())
    return {name: name in present for name in CPU_FEATURES}
