"""Per-epoch records in three forms: TensorBoard, a JSON-lines file and a CSV table; and the lock that keeps
a run folder to one training run at a time."""

from __future__ import annotations

import csv
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against a second writer
    fcntl = None  # type: ignore[assignment]

from .curves import plot_training_curves, read_history


class RunLog:
    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.dir = Path(out_dir)
        self.enabled = enabled
        self._tb = None
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.dir / "tb"))
            except ImportError:  # tensorboard is a dependency, but never fail a run over logging
                self._tb = None

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._tb is not None:
            self._tb.add_scalar(tag, value, step)

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        self._rewrite_csv()
        plot_training_curves(self.history(), self.dir / "curves.png", title=self.dir.name)
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.scalar(f"epoch/{key}", float(value), int(record["epoch"]))
        if self._tb is not None:
            self._tb.flush()

    def history(self) -> list[dict[str, Any]]:
        """One record per epoch, in order (see ``read_history``)."""
        return read_history(self.dir) if (self.dir / "metrics.jsonl").exists() else []

    def truncate_after(self, epoch: int) -> None:
        """On resume, drop records of epochs newer than the checkpoint (they will be redone)."""
        if not self.enabled:
            return
        kept = [r for r in self.history() if int(r["epoch"]) <= epoch]
        path = self.dir / "metrics.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._rewrite_csv()

    def _rewrite_csv(self) -> None:
        rows = self.history()
        if not rows:
            return
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with open(self.dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


LOCK_FILE = "train.lock"


class RunFolderBusy(OSError):
    """Another training run writes to this run folder; the message names the folder and that run's process."""

    def __str__(self) -> str:
        return str(self.strerror)


class RunLock:
    """One training run per run folder: an exclusive ``flock`` on ``<out_dir>/train.lock``, which holds the pid,
    host and start time of the run that has it.

    The operating system drops the lock when its process ends, however it ends (``kill -9`` and crashes
    included), so a dead run never leaves a stale lock behind; the file itself stays. Taken once per run, by
    rank 0 (the ranks of a ``torchrun`` job share their folder).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunFolderBusy` naming the folder and the process that holds it."""
        if fcntl is None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise OSError(err.errno, f"cannot create {self.path} ({err.strerror}): give an output_dir you can write "
                          "to (output_dir=runs/name)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OSError(err.errno, f"cannot lock {self.path} ({err.strerror}): put output_dir on a local "
                              "disk") from None
            raise RunFolderBusy(errno.EBUSY, _busy_message(self.path.parent, holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode() + b"\n")
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the next run have the folder (also done by the OS when this process ends)."""
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        found = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _busy_message(folder: Path, holder: dict[str, Any]) -> str:
    pid = holder.get("pid")
    host = holder.get("host")
    here = host in (None, socket.gethostname())
    who = f"process {pid}" if pid else "a process that has not yet written its id"
    where = "" if here else f" on {host}"
    since = f", since {holder['started']}" if holder.get("started") else ""
    stop = f"stop it (kill {pid}{'' if here else f' on {host}'})" if pid else "stop it"
    return (f"{folder} is in use by another tpose train ({who}{where}{since}): wait for it to end, {stop} and run "
            "again to resume, or give this run its own folder (output_dir=runs/other)")
