"""Where weights files are on disk: shipped inside the package, in ``$TPOSE_WEIGHTS_DIR``, in the torch hub
cache. The one place that looks; ``tpose.weights.download`` fetches what is not found.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..models.checkpoint import CheckpointError, read_metadata
from .catalog import FileEntry, WeightsEntry, default_entry, list_weights, lookup, offline_mode

ENV_WEIGHTS_DIR = "TPOSE_WEIGHTS_DIR"


def cache_dir() -> Path:
    """torch.hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(entry: WeightsEntry | FileEntry) -> Path:
    """Where a downloaded entry is (or will be) cached; also where to put it by hand when offline."""
    return cache_dir() / entry.file


def package_dir() -> Path:
    """``tpose/weights`` inside the installed package, found through importlib.resources."""
    root = resources.files("tpose").joinpath("weights")
    if isinstance(root, Path):
        return root
    # a zipped install: extract once for the life of the process
    import atexit
    from contextlib import ExitStack

    stack = ExitStack()
    atexit.register(stack.close)
    return Path(stack.enter_context(resources.as_file(root)))


def package_file(entry: WeightsEntry) -> Path:
    """Where a shipped entry's file lives in this install (whether or not it is there)."""
    if entry.source != "package":
        raise ValueError(f"weights {entry.name} are not shipped with tpose (source {entry.source!r})")
    return package_dir() / entry.file


def local_file(entry: WeightsEntry | FileEntry) -> Path | None:
    """The file of a shipped (``package``) or ``file`` entry when it exists (downloads: see :func:`find_local`)."""
    if entry.source == "package":
        path: Path | None = package_file(entry)  # type: ignore[arg-type]
    elif entry.source == "file":
        path = Path(entry.path) if getattr(entry, "path", None) is not None else None  # type: ignore[arg-type]
    else:
        return None
    return path if path is not None and path.is_file() else None


def weights_dirs(weights_dir: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    """``weights_dir`` then the folders of ``$TPOSE_WEIGHTS_DIR`` (separated by ``os.pathsep``)."""
    given: list[str | Path] = []
    if isinstance(weights_dir, (str, Path)):
        given.append(weights_dir)
    elif weights_dir is not None:
        given.extend(weights_dir)
    given.extend(p for p in os.environ.get(ENV_WEIGHTS_DIR, "").split(os.pathsep) if p)
    return [Path(p).expanduser() for p in given]


def find_local(entry: WeightsEntry | FileEntry,
               weights_dir: str | Path | Sequence[str | Path] | None = None) -> Path | None:
    """The entry's file if it is on disk: shipped/registered path, ``weights_dir``/$TPOSE_WEIGHTS_DIR, cache."""
    found = local_file(entry)
    if found is not None:
        return found
    for folder in weights_dirs(weights_dir):
        if (folder / entry.file).is_file():
            return folder / entry.file
    cached = cache_path(entry)
    return cached if entry.downloadable and cached.is_file() else None


def _shipped(variant: str) -> tuple[WeightsEntry, Path] | None:
    for entry in list_weights(variant):
        path = local_file(entry) if entry.source == "package" else None
        if path is not None:
            return entry, path
    return None


def shipped_tag(variant: str) -> str | None:
    """The tag of weights shipped inside the package for ``variant`` (present in this install), if any."""
    found = _shipped(variant)
    return found[0].tag if found else None


def shipped_file(variant: str) -> Path | None:
    """The file of the weights shipped for ``variant`` in this install, if any (no download, no registry lookup
    after this one)."""
    found = _shipped(variant)
    return found[1] if found else None


def default_tag(variant: str, offline: bool | None = None) -> str:
    """The tag ``weights=True`` means for ``variant``.

    Online: the entry marked ``default`` (the paper's COCO weights). Offline (``offline=True`` or
    ``$TPOSE_OFFLINE``): the default entry if already on disk, else weights shipped with tpose, else
    any other entry already on disk; with nothing local, the default (whose error then explains
    how to fetch it by hand).
    """
    preferred = default_entry(variant)
    if not (offline_mode() if offline is None else offline):
        return preferred.tag
    if find_local(preferred) is not None:
        return preferred.tag
    shipped = shipped_tag(variant)
    if shipped is not None:
        return shipped
    on_disk = [e for e in list_weights(variant) if find_local(e) is not None]
    return (on_disk[0] if on_disk else preferred).tag


def variants_with_weights(available_only: bool = False) -> list[str]:
    """Variants with registered weights; ``available_only`` drops shipped files missing from this install."""
    return sorted({e.variant for e in list_weights()
                   if not available_only or e.downloadable or local_file(e) is not None})


def entry_metadata(entry: WeightsEntry) -> dict[str, Any] | None:
    """The JSON metadata of a local entry's file (shipped or registered path), if it has any."""
    path = local_file(entry)
    if path is None:
        return None
    try:
        return read_metadata(path)
    except (CheckpointError, OSError, ValueError):
        return None


def get_weights(variant: str, tag: str | bool | None = None, offline: bool | None = None) -> WeightsEntry:
    """The entry for ``variant`` and ``tag`` (``None``/``True``: :func:`default_tag`); ``variant:tag`` works too."""
    if tag is False:
        raise ValueError("tag=False asks for no weights")
    return lookup(variant, default_tag(variant, offline) if tag in (None, True) else str(tag))
