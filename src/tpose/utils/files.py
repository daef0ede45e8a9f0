"""Writing files so that a crash or a full disk never leaves half a file, and reading the JSON beside one."""

from __future__ import annotations

import errno
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DiskFullError(OSError):
    """No space left on the device while writing ``path``; the previous file there is unchanged."""


def file_mode() -> int:
    """The mode a plain ``open`` gives a new file under the user's umask (0644 for umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` into a temporary file beside ``path``, then rename it over ``path``.

    The file gets the user's umask (as a plain ``open`` would), whatever the writer chose. When the
    disk is full the temporary file is removed, the old ``path`` is left as it was, and the error says
    so, naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:  # a folder that cannot be written fails here, naming the file (writers' own errors do not always)
        tmp.touch()
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        write(tmp)
        os.chmod(tmp, file_mode())  # some writers (safetensors, tempfile) create files 0600
        os.replace(tmp, path)
    except OSError as err:
        if err.errno == errno.ENOSPC or "No space left" in str(err):
            kept = f"; the previous {path.name} is unchanged" if path.exists() else ""
            raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing {path}{kept}; free some "
                                f"space (or point the output elsewhere) and run again") from None
        raise
    except RuntimeError as err:  # torch.save wraps the OS error of a full disk in a RuntimeError
        if "No space left" in str(err) or "file write failed" in str(err):
            kept = f"; the previous {path.name} is unchanged" if path.exists() else ""
            raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing {path}{kept}; free some "
                                f"space (or point the output elsewhere) and run again") from None
        raise
    except Exception as err:  # safetensors' Rust writer reports an OS error as "... (os error 13) ..."
        found = re.search(r"os error (\d+)", str(err))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The ``<stem>.json`` beside a weights or model file (None when there is none); a broken one is named."""
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{side}: cannot read the metadata beside {Path(path).name}: {err}") from None
    return data if isinstance(data, dict) else None
