"""Bridge jobs: `trigger:include` runs a child pipeline within the same `pyci run`.

A child pipeline is loaded from the files its bridge names (`local`, `project`, `template`,
`component`, `remote`, or `artifact` + `job`: a file an earlier job of this run generated),
planned as runner/child_plan.py says, and run by a scheduler of its own inside the bridge's
worker thread. Its jobs are named `bridge > job` everywhere (live view, logs, artifacts,
reports), which keeps them apart from the parent's and from another child's.

The bridge's status is GitLab's: with `strategy: depend` the child's (success, failed,
canceled); without, success once the child is created. One local difference, on purpose: even
without `depend` the bridge finishes only when its child has, so what waits for the bridge in
the parent starts after the child (GitLab would start it at once). A run's output stays in one
piece and its end waits for every child.

`trigger:project` (a multi-project pipeline) cannot run here: the bridge fails as GitLab fails
a bridge whose downstream project cannot be reached, with a note saying so.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.child_plan import MAX_DEPTH, SEPARATOR, child_options, plan_child, prefixed
from runner.core.errors import PyciError
from runner.core.events import (
    ChildPipelineCreated,
    ChildPipelineFinished,
    Event,
    JobOutcome,
    LogChunk,
    PipelineFinished,
    Reporter,
)
from runner.core.jobspec import JobSpec, TriggerSpec
from runner.project import ProjectOptions
from runner.schedule.scheduler import JobRunner, Scheduler


class ChildPipelines:
    """A JobRunner that runs bridge jobs itself and hands every other job to `run_job`."""

    def __init__(
        self,
        opts: ProjectOptions,
        facts: Any,
        run_job: JobRunner,
        reporter: Reporter,
        state_dir: Path,
        *,
        concurrency: int,
        prepare: Callable[[JobSpec], JobSpec] = lambda job: job,
        depth: int = 0,
        prefix: str = "",
    ) -> None:
        self.opts = opts
        self.facts = facts
        self.run_job = run_job
        self.reporter = reporter
        self.state_dir = state_dir
        self.concurrency = concurrency
        self.prepare = prepare  # what the run does to its jobs (masked variables marked)
        self.depth = depth
        self.prefix = prefix  # the names of this pipeline's jobs start with it

    def __call__(
        self, job: JobSpec, attempt: int, upstream: tuple[str, ...], cancel: threading.Event
    ) -> JobOutcome:
        if job.trigger is None:
            return self.run_job(job, attempt, upstream, cancel)
        started = time.monotonic()
        outcome = self._bridge(job, job.trigger, cancel)
        return dataclasses.replace(outcome, duration=time.monotonic() - started)

    # --- one bridge -----------------------------------------------------------------------

    def _bridge(self, job: JobSpec, trigger: TriggerSpec, cancel: threading.Event) -> JobOutcome:
        if trigger.project is not None:
            self._say(
                job,
                f"trigger:project `{trigger.project}` starts a pipeline of another project on "
                "the GitLab server; it cannot run locally, so this bridge fails as GitLab "
                "fails one whose downstream project cannot be reached",
            )
            return _failed("downstream_bridge_project_not_found", "multi-project trigger")
        if self.depth >= MAX_DEPTH:
            self._say(job, f"child pipelines nest at most {MAX_DEPTH} levels deep")
            return _failed("reached_max_descendant_pipelines_depth", "too deeply nested")
        try:
            child = self._plan(job, trigger)
        except PyciError as exc:  # every way a child cannot be created: the bridge fails
            self._say(job, f"the child pipeline could not be created:\n{exc}")
            return _failed("downstream_pipeline_creation_failed", "child pipeline not created")
        name = job.name + SEPARATOR
        jobs = tuple(self.prepare(prefixed(spec, name)) for spec in child.jobs)
        self.reporter.handle(ChildPipelineCreated(job.name, tuple((j.name, j.stage) for j in jobs)))
        runner = ChildPipelines(
            self._child_options(job, trigger),
            self.facts,
            self.run_job,
            self.reporter,
            self.state_dir,
            concurrency=self.concurrency,
            prepare=self.prepare,
            depth=self.depth + 1,
            prefix=name,
        )
        scheduler = Scheduler(
            jobs,
            runner,
            _ChildReporter(self.reporter, job.name),
            concurrency=self.concurrency,
            cancel=cancel,  # canceling the bridge cancels its child
        )
        result = scheduler.run()
        self._say(job, f"child pipeline {result.status}")
        if trigger.strategy != "depend":
            return JobOutcome("success", message="child pipeline created")
        # Ci::Bridge#inherit_status_from_downstream!
        if result.status in ("success", "success_with_warnings"):
            return JobOutcome("success", message=f"child pipeline {result.status}")
        if result.status == "canceled":
            return JobOutcome("canceled", message="child pipeline canceled")
        return _failed("unknown_failure", f"child pipeline {result.status}")

    def _plan(self, job: JobSpec, trigger: TriggerSpec) -> Any:
        return plan_child(self._child_options(job, trigger), self.facts, job, self._artifact_reader)

    def _child_options(self, job: JobSpec, trigger: TriggerSpec) -> ProjectOptions:
        return child_options(self.opts, trigger)

    def _artifact_reader(self, job: str, path: str) -> str:
        """`artifact: path` of `job` (a job of the bridge's own pipeline, this run)."""
        from runner.build.artifacts import ArtifactStore, pipeline_file_key
        from runner.config.remote_includes import IncludeError

        key = pipeline_file_key(self.opts.directory, self.opts.file)
        stored = ArtifactStore(self.state_dir, key).job_dir(self.prefix + job)
        file = (stored / path).resolve()
        if not file.is_relative_to(stored.resolve()) or not file.is_file():
            raise IncludeError(
                f"Job `{job}` has no artifact `{path}` in this run (run `{job}` first, and "
                "list the file in its artifacts:paths)"
            )
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise IncludeError(f"artifact `{path}` of job `{job}`: {exc}") from None

    def _say(self, job: JobSpec, text: str) -> None:
        self.reporter.handle(LogChunk(job.name, text.rstrip("\n") + "\n"))


class _ChildReporter:
    """The parent's reporter for a child's scheduler: its end is a ChildPipelineFinished, not
    the end of the run."""

    def __init__(self, reporter: Reporter, bridge: str) -> None:
        self.reporter = reporter
        self.bridge = bridge

    def handle(self, event: Event) -> None:
        if isinstance(event, PipelineFinished):
            event = ChildPipelineFinished(self.bridge, event.status, dict(event.outcomes))
        self.reporter.handle(event)


def _failed(reason: str, message: str) -> JobOutcome:
    return JobOutcome("failed", failure_reason=reason, message=message)  # type: ignore[arg-type]
