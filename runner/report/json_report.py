"""`--json-report FILE`: the pipeline and every job's outcome as one JSON document.

Written when the pipeline finishes, atomically (temporary file, then rename), so a reader
never sees half a report.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runner.core.errors import PyciError
from runner.core.events import (
    ChildPipelineCreated,
    ChildPipelineFinished,
    Event,
    JobOutcome,
    PipelineFinished,
)
from runner.report.logfiles import log_path


def report_document(
    jobs: Iterable[tuple[str, str]],
    finished: PipelineFinished,
    logs_dir: Path | None,
    name: str | None = None,
) -> dict[str, Any]:
    rows = []
    for job, stage in jobs:
        outcome = finished.outcomes.get(job, JobOutcome("created"))
        log = log_path(logs_dir, job) if logs_dir else None
        rows.append(
            {
                "name": job,
                "stage": stage,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "failure_reason": outcome.failure_reason,
                "allowed_failure": outcome.allowed_failure,
                "duration": round(outcome.duration, 3),
                "attempts": outcome.attempts,
                "coverage": outcome.coverage,
                "message": outcome.message,
                "log": str(log) if log and log.exists() else None,
            }
        )
    return {
        "name": name,
        "status": finished.status,
        "duration": round(finished.duration, 3),
        "jobs": rows,
    }


class ChildRows:
    """The jobs of a run as reports list them, child pipelines' jobs nested under their
    bridge, and those children's outcomes (the parent's PipelineFinished does not carry
    them). A reporter: feed it every event."""

    def __init__(self, jobs: Iterable[tuple[str, str]]) -> None:
        self.jobs: list[tuple[str, str]] = list(jobs)
        self.outcomes: dict[str, JobOutcome] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, ChildPipelineFinished):
            self.outcomes.update(event.outcomes)
        elif isinstance(event, ChildPipelineCreated):
            from runner.report.state import nested_after

            nested = nested_after(dict(self.jobs), event, lambda _name, stage: stage)
            self.jobs = list(nested.items())

    def with_outcomes(self, finished: PipelineFinished) -> PipelineFinished:
        outcomes = {**self.outcomes, **finished.outcomes}
        return PipelineFinished(finished.status, finished.duration, outcomes)


class ReportError(PyciError):
    """A report file could not be written: one line for the user, exit 1."""


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ReportError(f"cannot write the report {path}: {exc.strerror or exc}") from exc


class JsonReport:
    """`name`: the pipeline's name (`workflow:name`), if it has one."""

    def __init__(
        self,
        path: Path,
        jobs: Iterable[tuple[str, str]],
        logs_dir: Path | None,
        name: str | None = None,
    ):
        self.path = path
        self.rows = ChildRows(jobs)
        self.logs_dir = logs_dir
        self.name = name

    def handle(self, event: Event) -> None:
        self.rows.handle(event)
        if isinstance(event, PipelineFinished):
            finished = self.rows.with_outcomes(event)
            document = report_document(self.rows.jobs, finished, self.logs_dir, self.name)
            write_atomically(self.path, json.dumps(document, indent=2) + "\n")
