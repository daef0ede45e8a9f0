"""OS errors as one line that names the file and what to do, instead of a raw ``[Errno N] ...``.

The places that know which file or flag is involved call :func:`describe_os_error` with the fix that fits
there (``choose another -o``, ``set TPOSE_WEIGHTS_DIR``...); the command line uses it as the last resort.
"""

from __future__ import annotations

import errno

# what each errno means to a user, and the generic fix when the caller knows no better one
_REASONS = {
    errno.EACCES: ("permission denied", "choose a folder you can write to, or change its permissions"),
    errno.EPERM: ("operation not permitted (a read-only or system folder?)", "choose a folder you can write to"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
    errno.ENOSPC: ("no space left on the device", "free some space, or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free some space, or write somewhere else"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "give a folder path"),
    errno.EISDIR: ("is a folder, not a file", "give a file name"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or process fewer files at once"),
}


def describe_os_error(err: OSError, fix: str | None = None) -> str:
    """``<path>: <what went wrong>: <fix>`` for ``err``; ``fix`` replaces the generic advice for its errno.

    An error raised with a finished message (one argument, or errno and message without a file name) is
    kept as written, with ``fix`` appended when given.
    """
    path = err.filename
    reason, generic = _REASONS.get(err.errno or -1, (None, None))
    if path is None:
        text = err.strerror if err.errno is not None and err.strerror else str(err)
        return f"{text}: {fix}" if fix and fix not in text else text
    reason = reason or (err.strerror or str(err)).lower()
    other = f" (and {err.filename2})" if err.filename2 else ""
    advice = fix or generic
    return f"{path}{other}: {reason}" + (f": {advice}" if advice else "")
