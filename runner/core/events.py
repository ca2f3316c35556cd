"""What happens during a run, as plain events.

The scheduler and the build emit these to an injected `Reporter`; the rich live view, the plain
line printer, the log files and the JSON/JUnit reports each fold them into their own state. No
reporter ever reaches back into the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

JobStatus = Literal[
    "created",  # planned, waiting for what it needs
    "pending",  # released, waiting for a concurrency slot
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",  # never ran: an earlier failure or `when` decided so
    "manual",  # waits for a user to start it
]

# GitLab's failure reasons (gitlab-runner common.JobFailureReason), the ones that apply locally
FailureReason = Literal[
    "script_failure",
    "job_execution_timeout",
    "runner_system_failure",
    "image_pull_failure",
    "out_of_memory",
    "canceled",
    # a bridge job's (Ci::Bridge): its child pipeline failed, could not be made, or nests
    # too deep; a multi-project downstream is unreachable from here
    "unknown_failure",
    "downstream_pipeline_creation_failed",
    "reached_max_descendant_pipelines_depth",
    "downstream_bridge_project_not_found",
]

PipelineStatus = Literal["success", "success_with_warnings", "failed", "canceled", "skipped"]


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended (after retries: the last attempt)."""

    status: JobStatus
    exit_code: int | None = None
    failure_reason: FailureReason | None = None
    allowed_failure: bool = False  # failed, but allow_failure permits it: a warning
    duration: float = 0.0  # seconds, of the last attempt
    attempts: int = 1
    coverage: str | None = None
    message: str | None = None  # a one-line explanation for the user (e.g. why skipped)


@dataclass(frozen=True)
class JobQueued:
    job: str
    stage: str


@dataclass(frozen=True)
class JobStarted:
    job: str
    stage: str
    attempt: int = 1


@dataclass(frozen=True)
class SectionStarted:
    """A build stage of a job began (get_sources, step_script, after_script, ...)."""

    job: str
    section: str
    header: str


@dataclass(frozen=True)
class LogChunk:
    """Raw job output (already masked), as bytes decoded to text; may hold partial lines."""

    job: str
    text: str


@dataclass(frozen=True)
class JobFinished:
    job: str
    stage: str
    outcome: JobOutcome


@dataclass(frozen=True)
class PipelineFinished:
    status: PipelineStatus
    duration: float
    outcomes: dict[str, JobOutcome] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildPipelineCreated:
    """A bridge job (`trigger:include`) created its child pipeline: `jobs` (name, stage) are
    shown nested under the bridge, their names prefixed `bridge > `."""

    bridge: str
    jobs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ChildPipelineFinished:
    """A child pipeline ended; `outcomes` are its jobs' (prefixed names)."""

    bridge: str
    status: PipelineStatus
    outcomes: dict[str, JobOutcome] = field(default_factory=dict)


Event = (
    JobQueued
    | JobStarted
    | SectionStarted
    | LogChunk
    | JobFinished
    | PipelineFinished
    | ChildPipelineCreated
    | ChildPipelineFinished
)


class Reporter(Protocol):
    """Receives every event; called from scheduler threads, so it must be thread-safe."""

    def handle(self, event: Event) -> None: ...
