"""The int8 ONNX model that ships beside weights, and the check that it was made from those very weights.

Why a file and not a build step: static int8 quantization needs calibration crops from training data (a user
of the shipped weights has none) and minutes of CPU, and a wheel has no install step that could run it. So
``scripts/build_shipped_int8.py`` writes ``<weights stem>_int8.onnx`` beside the shipped ``.safetensors``,
with the SHA-256 of that ``.safetensors`` in the ``tpose`` JSON of its ONNX metadata. Whoever loads the
int8 file in place of the weights (the real-time path, ``precision="int8"``) calls :func:`check_int8`: a
weights file changed without rebuilding its int8 model is refused instead of silently running old weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .download import sha256_of

INT8_SUFFIX = "_int8.onnx"
WEIGHTS_HASH_KEY = "weights_sha256"  # in the int8 file's ``tpose`` metadata JSON
REALTIME_GATE_KEY = "realtime_gate"  # its measured accuracy against the fp32 real-time path (no flip test)
REBUILD_COMMAND = "python scripts/build_shipped_int8.py"


class Int8MismatchError(ValueError):
    """An int8 file whose recorded weights hash is not the hash of the weights it is meant to replace."""


def int8_path(weights: str | Path) -> Path:
    """Where the int8 model of ``weights`` lives: ``<stem>_int8.onnx`` beside it (whether or not it is there)."""
    path = Path(weights)
    return path.with_name(path.stem + INT8_SUFFIX)


def find_int8(weights: str | Path | None) -> Path | None:
    """The int8 model beside a ``.safetensors`` weights file, if one is there (None for other files)."""
    if weights is None or Path(weights).suffix.lower() != ".safetensors":
        return None
    path = int8_path(weights)
    return path if path.is_file() else None


def read_int8_metadata(path: str | Path) -> dict[str, Any]:
    """The ``tpose`` JSON of an ONNX file's metadata, read without starting an inference session."""
    import onnx  # heavy, and only needed here

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        return dict(json.loads(props.get("tpose", "{}") or "{}"))
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}


def check_int8(metadata: Mapping[str, Any], weights: str | Path, int8_file: str | Path | None = None) -> str:
    """Refuse an int8 model not made from ``weights``: its metadata's ``weights_sha256`` must be their hash.

    ``metadata`` is the int8 file's ``tpose`` JSON (``OnnxPoseModel.metadata`` or :func:`read_int8_metadata`).
    Returns the hash. Raises :class:`Int8MismatchError` naming the rebuild command otherwise.
    """
    where = f"{int8_file}" if int8_file is not None else "the int8 model"
    recorded = metadata.get(WEIGHTS_HASH_KEY)
    actual = sha256_of(weights)
    if recorded is None:
        raise Int8MismatchError(f"{where} records no {WEIGHTS_HASH_KEY}: it cannot be tied to {weights}; rebuild it "
                                f"with `{REBUILD_COMMAND}`")
    if recorded != actual:
        raise Int8MismatchError(f"{where} was made from weights with SHA-256 {str(recorded)[:12]}..., but {weights} "
                                f"has {actual[:12]}...: the weights changed since; rebuild it with `{REBUILD_COMMAND}` "
                                "(or run --precision fp32)")
    return actual
