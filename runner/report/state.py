"""The run as the user sees it, folded from events: one `JobView` per job, in pipeline order.

The live view renders from this and nothing else, so what it shows is only what events said.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from runner.core.events import (
    ChildPipelineCreated,
    ChildPipelineFinished,
    Event,
    JobFinished,
    JobOutcome,
    JobQueued,
    JobStarted,
    JobStatus,
    LogChunk,
    PipelineFinished,
    SectionStarted,
)
from runner.report.text import clean_line

T = TypeVar("T")


@dataclass
class JobView:
    name: str
    stage: str
    status: JobStatus = "created"
    attempt: int = 1
    started_at: float | None = None
    section: str | None = None
    last_line: str = ""
    outcome: JobOutcome | None = None
    manual: bool = False  # `when: manual` and not started by the user: it will not run
    _partial: str = ""  # output after the last newline

    @property
    def shown_status(self) -> str:
        """The status to show: a manual job is `manual` from the start, not waiting until
        its stage comes (when the scheduler says so)."""
        return "manual" if self.manual and self.status == "created" else self.status

    def elapsed(self, now: float) -> float | None:
        """Seconds it ran (so far); None for a job that never started."""
        if self.started_at is None:
            return None
        if self.outcome is not None:
            return self.outcome.duration
        return now - self.started_at


class RunState:
    """Thread-safe: `apply` is called from job threads, `snapshot` from the render thread."""

    def __init__(
        self, jobs: Iterable[tuple[str, str]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.jobs: dict[str, JobView] = {name: JobView(name, stage) for name, stage in jobs}
        self.finished: PipelineFinished | None = None
        self.started_at = clock()
        self._lock = threading.Lock()

    def mark_manual(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                if name in self.jobs:
                    self.jobs[name].manual = True

    def apply(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, PipelineFinished):
                self.finished = event
                return
            if isinstance(event, ChildPipelineCreated):
                self.jobs = nested_after(self.jobs, event, lambda n, s: JobView(n, s))
                return
            if isinstance(event, ChildPipelineFinished):
                return  # its jobs' own JobFinished events said everything
            view = self.jobs.get(event.job)
            if view is None:
                stage = getattr(event, "stage", "")
                view = self.jobs[event.job] = JobView(event.job, stage)
            _fold(view, event, self.clock)

    def snapshot(self) -> tuple[float, list[JobView]]:
        with self._lock:
            return self.clock(), [JobView(**vars(view)) for view in self.jobs.values()]


def pipeline_header(
    name: str | None, file: str, ref: str | None, short_sha: str | None, jobs: int
) -> str:
    """The live view's first line: which pipeline (workflow:name, else its file), for which
    commit, how many jobs. `Pipeline .gitlab-ci.yml · main @ 1a2b3c4d · 5 jobs`"""
    parts = [f"Pipeline {name or file}"]
    if ref or short_sha:
        parts.append(" @ ".join(filter(None, [ref, short_sha])))
    parts.append(f"{jobs} job" + ("s" if jobs != 1 else ""))
    return " · ".join(parts)


def nested_after(
    items: dict[str, T], created: ChildPipelineCreated, make: Callable[[str, str], T]
) -> dict[str, T]:
    """`items` (by job name, in display order) with the child's jobs right after the bridge
    and its earlier children, as the live view and the reports show them."""
    prefix = created.bridge + " > "
    names = list(items)
    anchors = [i for i, n in enumerate(names) if n == created.bridge or n.startswith(prefix)]
    at = anchors[-1] + 1 if anchors else len(names)
    added = [(n, make(n, stage)) for n, stage in created.jobs if n not in items]
    ordered = [(n, items[n]) for n in names[:at]] + added + [(n, items[n]) for n in names[at:]]
    return dict(ordered)


def _fold(view: JobView, event: Event, clock: Callable[[], float]) -> None:
    if isinstance(event, JobQueued):
        view.status = "pending"
    elif isinstance(event, JobStarted):
        view.status = "running"
        view.attempt = event.attempt
        view.started_at = clock()
    elif isinstance(event, SectionStarted):
        view.section = event.section
    elif isinstance(event, LogChunk):
        *lines, view._partial = (view._partial + event.text).split("\n")
        for line in (view._partial, *reversed(lines)):
            visible = _visible(line)
            if visible:
                view.last_line = visible
                break
    elif isinstance(event, JobFinished):
        view.status = event.outcome.status
        view.outcome = event.outcome


def _visible(line: str) -> str:
    """What a terminal would show of `line`: no markup, and after a carriage return only
    what was written last (progress bars)."""
    cleaned = clean_line(line, colors=False)
    return cleaned.rsplit("\r", 1)[-1].strip() if cleaned else ""
