"""What every benchmark report says besides its own tables: the machine and its load, and the files written.

Each benchmark builds its results (a JSON-ready dict with a ``machine`` from ``common.machine_info``) and
its Markdown sections; these helpers word the shared parts the same way and write ``<stem>.json`` and
``<stem>.md`` side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common import machine_info, write_json, write_markdown


def measured_on(machine: Mapping[str, Any], *details: str) -> str:
    """``Measured <time> UTC on <cpu> (<n> usable cores; <details>...)``: when and on what."""
    inside = "; ".join([f"{machine['usable_cores']} usable cores", *details])
    return f"Measured {machine['time_utc']} UTC on {machine['cpu']} ({inside})"


def load_average_text(machine: Mapping[str, Any]) -> str:
    """The load average before and after the run (other jobs on the machine disturb timings)."""
    return f"Load average before {machine.get('load_average')}, after {machine.get('load_average_after')}."


def record_load_after(machine: dict[str, Any], threads: int | None) -> None:
    """Store the load average at the end of the run in ``machine`` (``load_average_after``)."""
    machine["load_average_after"] = machine_info(threads).get("load_average")


def write_report(
    out: str | Path, stem: str, title: str, results: Mapping[str, Any], sections: Sequence[str]
) -> list[str]:
    """Write ``results`` to ``out/<stem>.json`` and ``sections`` under ``# title`` to ``out/<stem>.md``."""
    folder = Path(out)
    return [str(write_json(folder / f"{stem}.json", results)),
            str(write_markdown(folder / f"{stem}.md", title, sections))]
