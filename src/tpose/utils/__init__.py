"""Small helpers every layer may use: usable cores, atomic file writes, HxW sizes, ONNX Runtime sessions."""

from .cores import usable_cores
from .files import atomic_write, read_sidecar
from .sizes import format_size, parse_size

__all__ = ["atomic_write", "format_size", "parse_size", "read_sidecar", "usable_cores"]
