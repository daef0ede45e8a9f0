"""Goals a benchmark report judges: a model, where it is measured and the speed-up it needs.

On the command line a goal reads ``MODEL@WHERE:NEED``: ``transpose_r_a4@128x96:2.0`` (the training
benchmark: an input size) or ``transpose_h_a4@torch:1.3`` (the inference benchmark: a path). A report
judges the goals it is given, lists each judged one as met or missed, and leaves out those whose
measurement was not taken.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    """``model`` measured at ``at`` (an input size ``HxW`` or a path name) must reach ``need`` x its reference."""

    model: str
    at: str
    need: float

    def __str__(self) -> str:
        return f"{self.model}@{self.at}:{self.need:g}"


def parse_goal(text: str, at: Callable[[str], str] | None = None) -> Goal:
    """``"MODEL@WHERE:NEED"`` -> a Goal; ``at`` checks and normalises WHERE (raising ValueError when wrong)."""
    head, colon, need = text.rpartition(":")
    model, sep, where = head.partition("@")
    if not (colon and sep and model and where):
        raise argparse.ArgumentTypeError(f"expected MODEL@WHERE:NEED such as transpose_r_a4@128x96:2.0, got {text!r}")
    try:
        value = float(need)
        where = at(where) if at is not None else where
    except (ValueError, argparse.ArgumentTypeError) as err:
        raise argparse.ArgumentTypeError(f"bad goal {text!r}: {err}") from err
    if not value > 0:
        raise argparse.ArgumentTypeError(f"bad goal {text!r}: the speed-up needed must be positive")
    return Goal(model, where, value)


def measured(rows: Sequence[Mapping[str, Any]], where: Mapping[str, Any], key: str = "speedup_vs_reference") -> Any:
    """``key`` of the first row whose fields match ``where`` (None where no row matches: not timed)."""
    match = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return match[0].get(key) if match else None


def judged(fields: Mapping[str, Any], need: float, got: float | None) -> dict[str, Any]:
    """A goal's record: ``fields`` (what and where), the speed-up needed and the one measured (None: not taken)."""
    return {**fields, "need": need, "got": got, "met": None if got is None else got >= need}


def goal_lines(goals: Sequence[Mapping[str, Any]], describe: Callable[[Mapping[str, Any]], str]) -> list[str]:
    """``describe(goal): 2.30x (met)`` for every goal that was measured."""
    return [f"{describe(g)}: {g['got']:.2f}x ({'met' if g['met'] else 'MISSED'})" for g in goals
            if g["got"] is not None]


def goals_section(heading: str, lines: Sequence[str]) -> str:
    """The report's Markdown list of judged goals under ``heading`` (empty when none was measured)."""
    return f"{heading}\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""


def add_goal_options(
    parser: argparse.ArgumentParser, parse: Callable[[str], Goal], metavar: str, what: str, defaults: Sequence[Goal],
    also: str = "",
) -> None:
    """``--goal`` (repeatable; given, it replaces ``defaults``) and ``--no-goals`` (``also``: other goal options
    it overrides, e.g. ``" and --pipeline-goal"``); read them back with ``goals_asked``."""
    parser.add_argument("--goal", action="append", type=parse, default=None, metavar=metavar,
                        help=f"{what}; repeat for more (default: {' '.join(str(g) for g in defaults)})")
    parser.add_argument("--no-goals", action="store_true", help=f"judge no goal (overrides --goal{also})")


def goals_asked(args: argparse.Namespace, defaults: Sequence[Goal]) -> tuple[Goal, ...]:
    """The goals ``add_goal_options``'s options ask for: none, the ``--goal`` ones, or else ``defaults``."""
    return () if args.no_goals else tuple(args.goal) if args.goal else tuple(defaults)
