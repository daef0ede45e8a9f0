"""Getting registered files onto disk the way torch.hub does, and never keeping a bad one.

Files go to the standard torch hub cache (``torch.hub.get_dir()/checkpoints``, so ``$TORCH_HOME``
moves it) through ``torch.hub.download_url_to_file`` (progress bar included). A download lands
under a temporary name in the cache folder and is moved into place with ``os.replace`` only after
it passed every check: the byte count the server announced (and the registered size), the SHA-256
when one is registered, and, for pose weights, a strict load into the model they are for. So an
interrupted or wrong download never leaves a file that a later run would load, and a later run uses
the cache without touching the network.

Offline use: ``$TPOSE_OFFLINE=1`` never opens a connection; ``$TPOSE_WEIGHTS_DIR`` (folders
separated by ``os.pathsep``) is searched for the registered file names before the cache; any
``weights=`` argument may be a path. When a download is impossible the error says the URL, the exact
cache path to put the file at by hand, and these switches.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..models.checkpoint import BuildSpec, CheckpointError, CheckpointMismatchError, load_model
from ..utils.files import file_mode
from ..utils.oserrors import describe_os_error
from .catalog import ENV_BASE_URL, ENV_OFFLINE, FileEntry, WeightsEntry, offline_mode
from .files import ENV_WEIGHTS_DIR, cache_path, find_local, get_weights, package_file, shipped_tag

log = logging.getLogger(__name__)

ENV_TIMEOUT = "TPOSE_DOWNLOAD_TIMEOUT"
CONNECT_TIMEOUT_S = 10.0  # how long the first contact may take before we call it offline
READ_TIMEOUT_S = 60.0  # a stalled transfer fails after this long without data
STALE_AFTER_S = 3600.0  # leftovers of killed downloads older than this are removed

Entry = WeightsEntry | FileEntry


class WeightsUnavailableError(ConnectionError):
    """A file that needs downloading cannot be fetched (no network, refused, timed out, offline mode)."""

    def __init__(self, message: str, url: str, cache_path: Path) -> None:
        super().__init__(message)
        self.url = url
        self.cache_path = cache_path


class WeightsDownloadError(OSError):
    """A download that did not give a usable file: an HTTP error, a transfer cut short, a wrong SHA-256."""


# --------------------------------------------------------------------------------------------- messages


def _label(entry: Entry) -> str:
    return f"the weights {entry.name}" if isinstance(entry, WeightsEntry) else f"the {entry.name} file"


def offline_help(entry: Entry, base_url: str | None = None, extra: Sequence[str] = ()) -> str:
    """How to get ``entry`` without tpose downloading it: URL, cache path, environment variables."""
    url = entry.download_url(base_url)
    lines = [
        f"  URL:        {url}",
        "  To use it without network, download it elsewhere and put it at exactly",
        f"              {cache_path(entry)}",
        f"  or put it in a folder named by {ENV_WEIGHTS_DIR}=/path/to/folder",
    ]
    if isinstance(entry, WeightsEntry):
        lines.append("  or pass the file itself (--weights /path/to/file, or weights=... in Python).")
        lines.append(f"  {ENV_BASE_URL}=https://host/path fetches from a mirror; {ENV_OFFLINE}=1 never tries the "
                     "network.")
        shipped = shipped_tag(entry.variant)
        if shipped:
            lines.append(f"  Weights shipped with tpose for {entry.variant} (no download): {shipped}.")
    else:
        if entry.env_path:
            lines.append(f"  or point {entry.env_path}=/path/to/{entry.file} at a local copy.")
        lines.append(f"  {ENV_OFFLINE}=1 never tries the network.")
    lines += list(extra)
    return "\n".join(lines)


def unavailable(entry: Entry, base_url: str | None, reason: str, extra: Sequence[str] = ()) -> WeightsUnavailableError:
    """The error for a file that cannot be fetched now, with everything needed to fetch it by hand."""
    url = entry.download_url(base_url)
    message = f"cannot download {_label(entry)}: {reason}.\n{offline_help(entry, base_url, extra)}"
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


def _probe(entry: Entry, url: str, base_url: str | None, timeout: float) -> int | None:
    """A HEAD request with a short timeout: fails fast when offline, and gives the announced size."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "tpose"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            length = answer.headers.get("Content-Length")
    except urllib.error.HTTPError as err:
        if err.code in (405, 501):  # the server does not do HEAD; the later checks still catch a bad file
            return None
        raise WeightsDownloadError(
            f"cannot download {_label(entry)}: {url} answered HTTP {err.code} {err.reason}.\n"
            f"{offline_help(entry, base_url)}"
        ) from None
    except (OSError, http.client.HTTPException) as err:  # URLError, refused, reset, timed out, not HTTP
        host = urllib.parse.urlsplit(url).netloc
        raise unavailable(entry, base_url, f"{host} cannot be reached: {_reason(err)}") from None
    try:
        size = int(length) if length is not None else 0
    except ValueError:
        size = 0
    return size if size > 0 else None


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


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(entry: Entry, path: str | Path) -> None:
    """Raise unless ``path`` has the registered size and SHA-256 of ``entry`` (where those are known)."""
    path = Path(path)
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise CheckpointError(f"{_label(entry)}: {path} has {size} bytes, expected {entry.size}")
    if entry.sha256:
        got = sha256_of(path)
        if got != entry.sha256:
            raise CheckpointError(f"{_label(entry)}: SHA-256 of {path} is {got}, expected {entry.sha256}")


# --------------------------------------------------------------------------------------------- pose weights


def build_spec(entry: WeightsEntry, **overrides: Any) -> BuildSpec:
    """What the registry knows of the model ``entry``'s file is for (its metadata, when it has any, says more)."""
    return BuildSpec(variant=entry.variant, defaults=dict(entry.model_overrides), overrides=overrides)


def verify_weights(entry: WeightsEntry, path: str | Path) -> None:
    """Raise unless ``path`` holds ``entry``'s weights: size and SHA-256 (when registered), then a strict load."""
    check_file(entry, path)
    load_model(path, strict=True, spec=build_spec(entry))


def with_note(err: CheckpointError, note: str) -> CheckpointError:
    """The same kind of error with ``note`` added to its message (and the key lists kept)."""
    if isinstance(err, CheckpointMismatchError):
        return CheckpointMismatchError(str(err) + note, err.missing, err.unexpected, err.mismatched, err.guess,
                                       err.holds)
    return CheckpointError(f"{err}{note}")


# --------------------------------------------------------------------------------------------- downloading


def _check_cache_writable(final: Path) -> None:
    """Make the cache folder and try a file in it, so that an unwritable cache is named with its fix."""
    probe = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.probe")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise WeightsDownloadError(
            "the weights cache cannot be written: " + describe_os_error(
                err, f"set TORCH_HOME to a folder you can write to (downloads go to $TORCH_HOME/hub/checkpoints), "
                f"or download {final.name} by hand into a folder named by ${ENV_WEIGHTS_DIR}")) from None


def download_file(
    entry: Entry,
    *,
    verify: Callable[[Path], None] | None = None,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float | None = None,
    read_timeout: float = READ_TIMEOUT_S,
) -> Path:
    """Download ``entry`` into the torch hub cache (replacing any cached copy) and return its path.

    After the transfer: the announced and the registered size, the SHA-256 when registered, then
    ``verify(tmp)`` (pose weights: a strict load). Raises :class:`WeightsUnavailableError` when the server
    cannot be reached within ``timeout`` seconds (default ``$TPOSE_DOWNLOAD_TIMEOUT`` or 10),
    :class:`WeightsDownloadError` for an HTTP error or a cut transfer, and ``CheckpointError`` for a file
    that fails a check. In every failure nothing is left in the cache.
    """
    url = entry.download_url(base_url)
    final = cache_path(entry)
    if offline_mode():
        raise unavailable(entry, base_url, f"{ENV_OFFLINE} is set")
    _check_cache_writable(final)  # before any connection: an unwritable cache fails the same offline
    expected = _probe(entry, url, base_url, _timeout(timeout))
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
            check_file(entry, tmp)
            if verify is not None:
                verify(tmp)
        except CheckpointError as err:
            note = f"\n  (downloaded from {url}; the file was removed and nothing was saved at {final})"
            if not isinstance(err, CheckpointMismatchError):
                err = CheckpointError(f"downloaded {_label(entry)} are unusable: {err}")
            raise with_note(err, note) from None
        os.chmod(tmp, file_mode())  # torch.hub's temporary file is 0600
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def download_weights(entry: WeightsEntry, **kwargs: Any) -> Path:
    """Download pose weights: :func:`download_file` with a strict load as the last check."""
    return download_file(entry, verify=lambda tmp: verify_weights(entry, tmp), **kwargs)


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
    """The path of ``variant``'s weights ``tag`` (``None``/``True``: the default tag), downloading if needed."""
    entry = get_weights(variant, tag, offline=offline)
    return fetch(entry, base_url=base_url, weights_dir=weights_dir, offline=offline, progress=progress,
                 timeout=timeout)


def fetch(
    entry: WeightsEntry,
    *,
    base_url: str | None = None,
    weights_dir: str | Path | Sequence[str | Path] | None = None,
    offline: bool | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> Path:
    """The file of ``entry`` on disk, downloaded when needed.

    Order: the shipped/registered file, ``weights_dir`` and ``$TPOSE_WEIGHTS_DIR``, the torch hub
    cache, then a download (not when ``offline`` or ``$TPOSE_OFFLINE``). Files found on disk are
    not re-checked here; loading them is strict.
    """
    found = find_local(entry, weights_dir)
    if found is not None:
        return found
    offline = offline_mode() if offline is None else offline
    if entry.source == "package":
        raise FileNotFoundError(
            f"the weights {entry.name} ship with tpose as {package_file(entry)}, but this installation lacks "
            f"the file; reinstall tpose, or put {entry.file} in a folder named by {ENV_WEIGHTS_DIR}"
        )
    if entry.source == "file":
        raise FileNotFoundError(f"the weights {entry.name} are registered at {entry.path}, which does not exist")
    if offline:
        reason = f"{ENV_OFFLINE} is set" if offline_mode() else "offline=True was given"
        raise unavailable(entry, base_url, f"{reason} and the file is not in the cache or {ENV_WEIGHTS_DIR}")
    return download_weights(entry, base_url=base_url, progress=progress, timeout=timeout)


def resolve_file(entry: FileEntry, path: str | Path | None = None, *, offline: bool | None = None,
                 progress: bool = True, timeout: float | None = None, extra_help: Sequence[str] = ()) -> Path:
    """A non-weights file (the detector): ``path``, else ``$<entry.env_path>``, ``$TPOSE_WEIGHTS_DIR``, the
    cache, else a download (size and SHA-256 checked). Offline, it fails at once with the URL, the exact
    cache path and the variable or flag that points tpose at a local copy (``extra_help`` adds lines)."""
    if path is None and entry.env_path and os.environ.get(entry.env_path):
        path = os.environ[entry.env_path]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file (the {entry.name} file given"
                                    f"{' by ' + entry.env_path if entry.env_path else ''})")
        return p
    found = find_local(entry)
    if found is not None:
        return found
    if offline_mode() if offline is None else offline:
        reason = f"{ENV_OFFLINE} is set" if offline_mode() else "offline=True was given"
        raise unavailable(entry, None, f"{reason} and it is not in the cache", extra_help)
    try:
        return download_file(entry, progress=progress, timeout=timeout)
    except WeightsUnavailableError as err:
        raise unavailable(entry, None, str(err).split(": ", 1)[-1].split(".\n", 1)[0], extra_help) from None
