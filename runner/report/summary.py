"""The final table (job, stage, status, duration, exit code, allowed failure) and status line.

rich is imported by the functions that draw, not by this module: the plain reporter only needs
`format_duration`, and a plain run imports rich when it draws the summary, after its jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.core.events import JobOutcome, PipelineStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "canceled": "magenta",
    "skipped": "dim",
    "manual": "cyan",
    "created": "dim",
    "pending": "yellow",
    "running": "blue",
}

PIPELINE_WORDS: dict[PipelineStatus, tuple[str, str]] = {
    "success": ("passed", "bold green"),
    "success_with_warnings": ("passed with warnings", "bold yellow"),
    "failed": ("failed", "bold red"),
    "canceled": ("was canceled", "bold magenta"),
    "skipped": ("was skipped (no job ran)", "bold"),
}


def _status_style(outcome: JobOutcome) -> str:
    if outcome.status == "failed" and outcome.allowed_failure:
        return "yellow"
    return STATUS_STYLE.get(outcome.status, "")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


# rich's options per column
_COLUMNS: dict[str, dict[str, Any]] = {
    "job": {"overflow": "fold", "ratio": None},
    "stage": {"no_wrap": True},
    "status": {"no_wrap": True},
    "duration": {"justify": "right"},
    "exit code": {"justify": "right"},
    "allowed failure": {},
    "coverage": {"justify": "right"},
    "note": {"overflow": "fold"},
}


def summary_table(rows: Sequence[tuple[str, str, JobOutcome]]) -> Table:
    """`rows`: (job, stage, outcome) in pipeline order."""
    from rich.table import Table
    from rich.text import Text

    header, body = _cells(rows)
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in header:
        table.add_column(name, **_COLUMNS[name])
    for (_job, _stage, outcome), cells in zip(rows, body, strict=True):
        styles = {"status": _status_style(outcome), "note": "dim"}
        # Text, not str: a str cell is read as rich markup, and matrix job names ("build:
        # [linux, amd64]") are no markup
        styled = zip(header, cells, strict=True)
        table.add_row(*(Text(cell, style=styles.get(name, "")) for name, cell in styled))
    return table


def _note(outcome: JobOutcome) -> str:
    parts = []
    if outcome.attempts > 1:
        parts.append(f"{outcome.attempts} attempts")
    # a script failure's reason and message only repeat the exit code column, a canceled
    # job's the status
    if outcome.failure_reason not in (None, "script_failure", "canceled"):
        parts.append(outcome.failure_reason)
    if outcome.message and outcome.failure_reason != "script_failure":
        parts.append(outcome.message)
    return "; ".join(dict.fromkeys(parts))


def _cells(rows: Sequence[tuple[str, str, JobOutcome]]) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows as plain strings."""
    with_coverage = any(outcome.coverage for _, _, outcome in rows)
    with_notes = any(outcome.message for _, _, outcome in rows)
    header = ["job", "stage", "status", "duration", "exit code", "allowed failure"]
    header += ["coverage"] * with_coverage + ["note"] * with_notes
    body = []
    for job, stage, outcome in rows:
        ran = outcome.status not in ("skipped", "manual") and outcome.duration
        status = outcome.status
        if outcome.status == "failed" and outcome.allowed_failure:
            status = "failed (allowed)"
        cells = [
            job,
            stage,
            status,
            format_duration(outcome.duration) if ran else "",
            "" if outcome.exit_code is None else str(outcome.exit_code),
            "yes" if outcome.allowed_failure else "",
        ]
        if with_coverage:
            cells.append(f"{outcome.coverage}%" if outcome.coverage else "")
        if with_notes:
            cells.append(_note(outcome))
        body.append(cells)
    return header, body


def status_line(status: PipelineStatus, duration: float) -> Text:
    from rich.text import Text

    words, style = PIPELINE_WORDS[status]
    return Text(f"Pipeline {words} in {format_duration(duration)}", style=style)


def print_summary(
    console: Console,
    rows: Sequence[tuple[str, str, JobOutcome]],
    status: PipelineStatus,
    duration: float,
) -> None:
    console.print()
    console.print(summary_table(rows))
    console.print()
    console.print(status_line(status, duration))
