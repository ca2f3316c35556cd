"""The final table (job, stage, status, duration, exit code, allowed failure) and status line.

rich is imported by the functions that draw, not by this module: the plain reporter only needs
`format_duration`, and `pyci run --plain` loads rich (~40 ms) while its jobs run (see
runner/commands/run.py), not before the first one starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.events import JobOutcome, PipelineStatus

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


def status_text(outcome: JobOutcome) -> Text:
    from rich.text import Text

    if outcome.status == "failed" and outcome.allowed_failure:
        return Text("failed (allowed)", style="yellow")
    return Text(outcome.status, style=STATUS_STYLE.get(outcome.status, ""))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def summary_table(rows: Sequence[tuple[str, str, JobOutcome]]) -> Table:
    """`rows`: (job, stage, outcome) in pipeline order."""
    from rich.table import Table
    from rich.text import Text

    with_coverage = any(outcome.coverage for _, _, outcome in rows)
    with_notes = any(outcome.message for _, _, outcome in rows)
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("job", overflow="fold", ratio=None)
    table.add_column("stage", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("duration", justify="right")
    table.add_column("exit code", justify="right")
    table.add_column("allowed failure")
    if with_coverage:
        table.add_column("coverage", justify="right")
    if with_notes:
        table.add_column("note", overflow="fold")
    for job, stage, outcome in rows:
        ran = outcome.status not in ("skipped", "manual") and outcome.duration
        cells: list[str | Text] = [
            job,
            stage,
            status_text(outcome),
            format_duration(outcome.duration) if ran else "",
            "" if outcome.exit_code is None else str(outcome.exit_code),
            "yes" if outcome.allowed_failure else "",
        ]
        if with_coverage:
            cells.append(f"{outcome.coverage}%" if outcome.coverage else "")
        if with_notes:
            cells.append(Text(_note(outcome), style="dim"))
        table.add_row(*cells)
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
