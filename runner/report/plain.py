"""`--plain`: one line per output line, prefixed by the job's name; for logs and pipes.

Partial lines are held per job until their newline arrives (or the job ends), so lines of jobs
running side by side never interleave mid-line. The build's trace already carries a header
line per build stage, so section events print nothing of their own.
"""

from __future__ import annotations

from typing import TextIO

from runner.core.events import (
    ChildPipelineCreated,
    Event,
    JobFinished,
    JobOutcome,
    JobStarted,
    LogChunk,
    SectionStarted,
)
from runner.report.summary import format_duration
from runner.report.text import LineBuffer, clean_line


class PlainReporter:
    """`colors`: keep the job's ANSI colours (only sensible on a terminal)."""

    def __init__(self, stream: TextIO, colors: bool = False) -> None:
        self.stream = stream
        self.colors = colors
        self._lines = LineBuffer()

    def handle(self, event: Event) -> None:
        if isinstance(event, LogChunk):
            for line in self._lines.feed(event.job, event.text):
                self._output(event.job, line)
        elif isinstance(event, JobStarted):
            again = f", attempt {event.attempt}" if event.attempt > 1 else ""
            self._line(event.job, f"--- job started (stage {event.stage}{again})")
        elif isinstance(event, JobFinished):
            rest = self._lines.flush(event.job)
            if rest is not None:
                self._output(event.job, rest)
            self._line(event.job, f"--- {finished_words(event.outcome)}")
        elif isinstance(event, SectionStarted) and event.section == "delayed":
            self._line(event.job, f"--- {event.header}")  # the scheduler's, not in the trace
        elif isinstance(event, ChildPipelineCreated):
            names = ", ".join(name for name, _stage in event.jobs)
            self._line(event.bridge, f"--- child pipeline created: {names}")
        else:
            return
        self.stream.flush()

    def _output(self, job: str, line: str) -> None:
        cleaned = clean_line(line, self.colors)
        if cleaned is not None:
            self._line(job, cleaned)

    def _line(self, job: str, text: str) -> None:
        self.stream.write(f"[{job}] {text}\n")


def finished_words(outcome: JobOutcome) -> str:
    """`job succeeded in 0.12s`, `job failed: exit code 2 (allowed to fail)`, ..."""
    took = f" in {format_duration(outcome.duration)}" if outcome.duration else ""
    if outcome.status == "success":
        return f"job succeeded{took}"
    if outcome.status == "failed":
        why = f"exit code {outcome.exit_code}" if outcome.exit_code is not None else ""
        if outcome.failure_reason and outcome.failure_reason != "script_failure":
            why = f"{why}, {outcome.failure_reason}" if why else outcome.failure_reason
        allowed = " (allowed to fail)" if outcome.allowed_failure else ""
        return f"job failed{took}: {why or 'unknown reason'}{allowed}"
    if outcome.status == "canceled":
        return f"job canceled{took}"
    if outcome.status == "manual":
        return "manual job, not started (name it or use --manual)"
    return f"job skipped: {outcome.message or 'not released'}"
