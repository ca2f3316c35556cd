"""The end of a failed job's log, printed after the summary: what went wrong, without opening
the log file, and where that file is (`.pyci/logs/<job>.log`) for the rest."""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.core.events import JobOutcome
from runner.report.logfiles import log_path

if TYPE_CHECKING:
    from rich.console import Console

TAIL_LINES = 20


@dataclass(frozen=True)
class FailureTail:
    job: str
    log: Path  # as shown: relative to the current directory when it is below it
    lines: tuple[str, ...]  # the log's last lines (fewer when the log is shorter)

    def heading(self) -> str:
        return f"--- {self.job} failed; the last {len(self.lines)} lines of {self.log}:"


def failure_tails(
    rows: Sequence[tuple[str, str, JobOutcome]], logs_dir: Path, count: int = TAIL_LINES
) -> list[FailureTail]:
    """A tail per failed job of `rows` (job, stage, outcome), in their order. A job allowed
    to fail has none (its failure is a warning, the pipeline passed), nor has a job whose log
    does not exist (it never started)."""
    tails = []
    for job, _stage, outcome in rows:
        if outcome.status != "failed" or outcome.allowed_failure:
            continue
        path = log_path(logs_dir, job)
        try:
            with path.open(encoding="utf-8", errors="replace") as log:
                lines = tuple(line.rstrip("\n") for line in collections.deque(log, maxlen=count))
        except OSError:
            continue
        tails.append(FailureTail(job, _shown(path), lines))
    return tails


def _shown(path: Path) -> Path:
    try:
        relative = Path(os.path.relpath(path))
    except ValueError:
        return path
    return path if relative.parts[:1] == ("..",) else relative


def plain_tails(tails: Sequence[FailureTail]) -> str:
    """The tails as text, each under its heading, for a pipe or a file."""
    blocks = ["\n".join([tail.heading(), *tail.lines]) for tail in tails]
    return "".join(f"\n{block}\n" for block in blocks)


def print_tails(console: Console, tails: Sequence[FailureTail]) -> None:
    from rich.text import Text

    for tail in tails:
        console.print()
        console.print(Text(tail.heading(), style="bold red"))
        # Text, not str: a log line is no rich markup; no wrapping would lose nothing, but a
        # long line folded onto the next rows reads as the log did
        console.print(Text("\n".join(tail.lines)), soft_wrap=True)
