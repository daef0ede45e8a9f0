"""Getting registered weights onto disk the way torch.hub does, and never loading a bad file.

Files go to the standard torch hub cache (``torch.hub.get_dir()/checkpoints``, so ``$TORCH_HOME``
moves it) through ``torch.hub.download_url_to_file`` (progress bar included). A download lands
under a temporary name in the cache folder and is moved into place with ``os.replace`` only after
it passed every check: the byte count the server announced, the SHA-256 when one is registered,
and a strict load into the model it is for. So an interrupted or wrong download never leaves a
file that a later run would load, and a later run uses the cache without touching the network.

Offline use: ``$TPOSE_OFFLINE=1`` never opens a connection; ``$TPOSE_WEIGHTS_DIR`` (folders
separated by ``os.pathsep``) is searched for the registered file names before the cache; any
``--weights``/``weights=`` argument may be a path. When a download is impossible the error says
the URL, the exact cache path to put the file at by hand, and these switches.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .models.checkpoint import CheckpointError, CheckpointMismatchError, load_weights, read_metadata
from .models.registry import get_config, list_models
from .models.transpose import TransPose
from .weights_registry import (
    ENV_BASE_URL,
    ENV_OFFLINE,
    WeightsEntry,
    get_weights,
    list_weights,
    local_file,
    offline_mode,
    package_file,
    tags,
)

log = logging.getLogger(__name__)

ENV_WEIGHTS_DIR = "TPOSE_WEIGHTS_DIR"
ENV_TIMEOUT = "TPOSE_DOWNLOAD_TIMEOUT"
CONNECT_TIMEOUT_S = 10.0  # how long the first contact may take before we call it offline
READ_TIMEOUT_S = 60.0  # a stalled transfer fails after this long without data
STALE_AFTER_S = 3600.0  # leftovers of killed downloads older than this are removed
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")


class WeightsUnavailableError(ConnectionError):
    """Weights that need downloading cannot be fetched (no network, refused, timed out, offline mode)."""

    def __init__(self, message: str, url: str, cache_path: Path) -> None:
        super().__init__(message)
        self.url = url
        self.cache_path = cache_path


class WeightsDownloadError(OSError):
    """A download that did not give a usable file: an HTTP error, a transfer cut short, a wrong SHA-256."""


# --------------------------------------------------------------------------------------------- where files are


def cache_dir() -> Path:
    """torch.hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(entry: WeightsEntry) -> Path:
    """Where a downloaded entry is (or will be) cached; also where to put it by hand when offline."""
    return cache_dir() / entry.file


def _weights_dirs(weights_dir: str | Path | Sequence[str | Path] | None) -> list[Path]:
    given: list[str | Path] = []
    if isinstance(weights_dir, (str, Path)):
        given.append(weights_dir)
    elif weights_dir is not None:
        given.extend(weights_dir)
    given.extend(p for p in os.environ.get(ENV_WEIGHTS_DIR, "").split(os.pathsep) if p)
    return [Path(p).expanduser() for p in given]


def find_local(entry: WeightsEntry, weights_dir: str | Path | Sequence[str | Path] | None = None) -> Path | None:
    """The entry's file if it is on disk: shipped/registered path, ``weights_dir``/$TPOSE_WEIGHTS_DIR, cache."""
    found = local_file(entry)
    if found is not None:
        return found
    for folder in _weights_dirs(weights_dir):
        if (folder / entry.file).is_file():
            return folder / entry.file
    cached = cache_path(entry)
    return cached if entry.downloadable and cached.is_file() else None


# --------------------------------------------------------------------------------------------- messages


def offline_help(entry: WeightsEntry, base_url: str | None = None) -> str:
    """How to get ``entry`` without tpose downloading it: URL, cache path, environment variables."""
    url = entry.download_url(base_url)
    lines = [
        f"  URL:        {url}",
        "  To use it without network, download it elsewhere and put it at exactly",
        f"              {cache_path(entry)}",
        f"  or put it in a folder named by {ENV_WEIGHTS_DIR}=/path/to/folder, or pass the file itself",
        "  (--weights /path/to/file, weights=... or create_model(..., checkpoint=...)).",
        f"  {ENV_BASE_URL}=https://host/path fetches from a mirror; {ENV_OFFLINE}=1 never tries the network.",
    ]
    shipped = [e.tag for e in list_weights(entry.variant) if e.source == "package" and local_file(e) is not None]
    if shipped:
        lines.append(f"  Weights shipped with tpose for {entry.variant} (no download): {', '.join(shipped)}.")
    return "\n".join(lines)


def _unavailable(entry: WeightsEntry, base_url: str | None, reason: str) -> WeightsUnavailableError:
    url = entry.download_url(base_url)
    message = f"cannot download the weights {entry.name}: {reason}.\n{offline_help(entry, base_url)}"
    return WeightsUnavailableError(message, url, cache_path(entry))


def _reason(err: BaseException) -> str:
    inner = getattr(err, "reason", err)  # URLError wraps the socket's error
    if isinstance(inner, TimeoutError):
        return "no answer within the timeout"
    return str(inner).strip() or type(inner).__name__


# --------------------------------------------------------------------------------------------- network


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    text = os.environ.get(ENV_TIMEOUT)
    try:
        return float(text) if text else CONNECT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{ENV_TIMEOUT} must be a number of seconds, got {text!r}") from None


def _probe(entry: WeightsEntry, url: str, base_url: str | None, timeout: float) -> int | None:
    """A HEAD request with a short timeout: fails fast when offline, and gives the announced size."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "tpose"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            length = answer.headers.get("Content-Length")
    except urllib.error.HTTPError as err:
        if err.code in (405, 501):  # the server does not do HEAD; the strict load still checks the file
            return None
        raise WeightsDownloadError(
            f"cannot download the weights {entry.name}: {url} answered HTTP {err.code} {err.reason}.\n"
            f"{offline_help(entry, base_url)}"
        ) from None
    except (OSError, http.client.HTTPException) as err:  # URLError, refused, reset, timed out, not HTTP
        host = urllib.parse.urlsplit(url).netloc
        raise _unavailable(entry, base_url, f"{host} cannot be reached: {_reason(err)}") from None
    try:
        size = int(length) if length is not None else 0
    except ValueError:
        size = 0
    return size if size > 0 else None  # unknown: the strict load still catches a short file


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torch.hub opens its connection without a timeout; give its sockets one while it downloads."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _remove_stale(target: Path) -> None:
    """Remove leftovers of killed downloads of ``target`` (a fresh one may belong to a running download)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.stem}.*.tmp*"):
        try:
            if now - leftover.stat().st_mtime > STALE_AFTER_S:
                leftover.unlink()
        except OSError:
            pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- checking


def model_for(entry: WeightsEntry, metadata: dict[str, Any] | None = None, **overrides: Any) -> TransPose:
    """The (randomly initialised) model ``entry``'s weights fit: tpose metadata's architecture, else the
    variant with the entry's ``model_overrides``; ``overrides`` come last (e.g. ``dropout``)."""
    saved = metadata.get("model") if isinstance(metadata, dict) else None
    if isinstance(metadata, dict) and metadata.get("variant") not in (None, entry.variant):
        raise CheckpointError(
            f"weights {entry.name}: the file's metadata says it was trained as {metadata['variant']}, "
            f"not {entry.variant}"
        )
    arch = {**dict(entry.model_overrides), **(dict(saved) if isinstance(saved, dict) else {}), **overrides}
    return TransPose(get_config(entry.variant, **arch))


def verify_weights(entry: WeightsEntry, path: str | Path) -> None:
    """Raise unless ``path`` holds ``entry``'s weights: its SHA-256 (when registered), then a strict load."""
    path = Path(path)
    if entry.sha256:
        got = _sha256(path)
        if got != entry.sha256:
            raise CheckpointError(f"weights {entry.name}: SHA-256 of {path} is {got}, expected {entry.sha256}")
    metadata = read_metadata(path) if path.suffix == ".safetensors" else None
    load_weights(model_for(entry, metadata), path, strict=True)


def _with_note(err: CheckpointError, note: str) -> CheckpointError:
    """The same kind of error with ``note`` added to its message (and the key lists kept)."""
    if isinstance(err, CheckpointMismatchError):
        return CheckpointMismatchError(str(err) + note, err.missing, err.unexpected, err.mismatched, err.guess)
    return CheckpointError(f"{err}{note}")


def _rejected(err: CheckpointError, entry: WeightsEntry, url: str, final: Path) -> CheckpointError:
    """The same error, saying where the file came from and that nothing was kept."""
    note = f"\n  (downloaded from {url}; the file was removed and nothing was saved at {final})"
    if not isinstance(err, CheckpointMismatchError):
        err = CheckpointError(f"downloaded weights {entry.name} are unusable: {err}")
    return _with_note(err, note)


# --------------------------------------------------------------------------------------------- downloading


def download_weights(
    entry: WeightsEntry,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float | None = None,
    read_timeout: float = READ_TIMEOUT_S,
) -> Path:
    """Download ``entry`` into the torch hub cache (replacing any cached copy) and return its path.

    Raises :class:`WeightsUnavailableError` when the server cannot be reached within ``timeout``
    seconds (default ``$TPOSE_DOWNLOAD_TIMEOUT`` or 10), :class:`WeightsDownloadError` for an HTTP
    error or a cut transfer, and ``CheckpointError``/``CheckpointMismatchError`` (with the missing and
    unexpected keys) for a file that is not the entry's weights. In every failure nothing is left in
    the cache.
    """
    url = entry.download_url(base_url)
    final = cache_path(entry)
    if offline_mode():
        raise _unavailable(entry, base_url, f"{ENV_OFFLINE} is set")
    expected = _probe(entry, url, base_url, _timeout(timeout))
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.tmp{final.suffix}")
    log.info("downloading %s to %s", url, final)
    try:
        try:
            with _socket_timeout(read_timeout):
                torch.hub.download_url_to_file(url, str(tmp), hash_prefix=None, progress=progress)
        except urllib.error.HTTPError as err:
            raise WeightsDownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError, http.client.HTTPException) as err:
            raise WeightsDownloadError(
                f"download of {url} was interrupted ({_reason(err)}); nothing was saved at {final}, run again "
                "to retry"
            ) from None
        size = tmp.stat().st_size
        if expected is not None and size != expected:
            raise WeightsDownloadError(
                f"download of {url} was cut off: received {size} of {expected} bytes; nothing was saved at "
                f"{final}, run again to retry"
            )
        try:
            verify_weights(entry, tmp)
        except CheckpointError as err:
            raise _rejected(err, entry, url, final) from None
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def resolve_weights(
    variant: str,
    tag: str | bool | None = None,
    *,
    base_url: str | None = None,
    weights_dir: str | Path | Sequence[str | Path] | None = None,
    offline: bool | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> Path:
    """The path of ``variant``'s weights ``tag`` (``None``/``True``: the default tag), downloading if needed.

    Order: the shipped/registered file, ``weights_dir`` and ``$TPOSE_WEIGHTS_DIR``, the torch hub
    cache, then a download (not when ``offline`` or ``$TPOSE_OFFLINE``). Files found on disk are
    not re-checked here; loading them is strict.
    """
    offline = offline_mode() if offline is None else offline
    entry = get_weights(variant, tag, offline=offline)
    found = find_local(entry, weights_dir)
    if found is not None:
        return found
    if entry.source == "package":
        raise FileNotFoundError(
            f"the weights {entry.name} ship with tpose as {package_file(entry)}, but this installation lacks "
            f"the file; reinstall tpose, or put {entry.file} in a folder named by {ENV_WEIGHTS_DIR}"
        )
    if entry.source == "file":
        raise FileNotFoundError(f"the weights {entry.name} are registered at {entry.path}, which does not exist")
    if offline:
        reason = f"{ENV_OFFLINE} is set" if offline_mode() else "offline=True was given"
        raise _unavailable(entry, base_url, f"{reason} and the file is not in the cache or {ENV_WEIGHTS_DIR}")
    return download_weights(entry, base_url=base_url, progress=progress, timeout=timeout)


def load_pretrained(
    variant: str,
    tag: str | bool | None = True,
    *,
    base_url: str | None = None,
    weights_dir: str | Path | Sequence[str | Path] | None = None,
    offline: bool | None = None,
    progress: bool = True,
    timeout: float | None = None,
    **overrides: Any,
) -> TransPose:
    """``variant`` with its registered weights ``tag`` loaded strictly (what ``create_model(pretrained=)`` does).

    The architecture is the one the weights fit (tpose metadata, else the entry's overrides);
    ``overrides`` may change what the weights do not fix (``dropout``, ``image_size`` of the input).
    ``model.metadata`` records the weights' name, file and keypoint set.
    """
    offline = offline_mode() if offline is None else offline
    entry = get_weights(variant, tag, offline=offline)
    path = resolve_weights(
        variant, entry.tag, base_url=base_url, weights_dir=weights_dir, offline=offline, progress=progress,
        timeout=timeout,
    )
    metadata = read_metadata(path) if path.suffix == ".safetensors" else None
    model = model_for(entry, metadata, **overrides)
    try:
        load_weights(model, path, strict=True)
    except CheckpointError as err:
        if path == cache_path(entry):
            raise _with_note(err, f"\n  (cached file {path}: delete it to download it again)") from err
        raise
    meta = dict(metadata or {})
    meta.setdefault("variant", entry.variant)
    meta.setdefault("keypoint_set", entry.keypoint_set)
    meta.update({"weights": entry.name, "weights_file": str(path), "model": model.config.to_dict()})
    model.metadata = meta
    return model


def resolve_weights_arg(
    weights: str | Path,
    model: str | None = None,
    **kwargs: Any,
) -> Path:
    """What ``--weights`` / ``weights=`` name: a file path, a tag of ``model``, or ``variant:tag``.

    ``kwargs`` go to :func:`resolve_weights` (``base_url``, ``offline``, ``progress``...).
    """
    text = str(weights)
    path = Path(text).expanduser()
    looks_like_path = isinstance(weights, Path) or os.sep in text or path.suffix in WEIGHT_SUFFIXES
    if path.is_file():
        return path
    if looks_like_path:
        raise FileNotFoundError(f"{text}: no such weights file")
    if ":" in text:
        variant, tag = text.split(":", 1)
        return resolve_weights(variant, tag, **kwargs)
    if model is None or model not in list_models():
        raise ValueError(
            f"weights {text!r} is neither a file nor 'variant:tag' (e.g. transpose_r_a4:coco-256x192), and no "
            "registered model name was given to read it as a tag of"
        )
    if text not in tags(model):
        known = ", ".join(tags(model)) or "none"
        raise ValueError(f"{text}: no such weights file, and not a weights tag of {model} (its tags: {known})")
    return resolve_weights(model, text, **kwargs)
