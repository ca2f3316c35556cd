"""Bridge jobs: `trigger:include` runs a child pipeline within the same `pyci run`.

A child pipeline is loaded from the files its bridge names (`local`, `project`, `template`,
`component`, `remote`, or `artifact` + `job`: a file an earlier job of this run generated),
planned like any pipeline with `CI_PIPELINE_SOURCE=parent_pipeline` and the bridge's forwarded
variables as its pipeline variables, and run by a scheduler of its own inside the bridge's
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

# GitLab lets a parent pipeline have children and grandchildren, no deeper
# (doc/ci/pipelines/downstream_pipelines.md: "up to two levels of child pipelines").
MAX_DEPTH = 2
SEPARATOR = " > "


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
        jobs = tuple(self.prepare(_prefixed(spec, name)) for spec in child.jobs)
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


def child_options(opts: ProjectOptions, trigger: TriggerSpec) -> ProjectOptions:
    """The child's pipeline variables: the bridge's YAML variables (forward:yaml_variables,
    on by default) and the parent's own pipeline variables (forward:pipeline_variables)."""
    variables: dict[str, str] = {}
    if trigger.forward_pipeline_variables:
        variables.update(opts.variables)
    if trigger.forward_yaml_variables:
        variables.update({v.key: v.value for v in trigger.variables})
    variables["CI_PIPELINE_SOURCE"] = "parent_pipeline"
    return dataclasses.replace(opts, variables=variables)


def plan_child(
    options: ProjectOptions, facts: Any, job: JobSpec, artifact_reader: Callable[[str, str], str]
) -> Any:
    """The child pipeline of bridge `job` (runner.pipeline.Pipeline), planned, not run."""
    from runner.config.expand import expand_config
    from runner.config.include import load_child_config
    from runner.pipeline import Expanded, plan_expanded, server_includes

    assert job.trigger is not None
    variables = {v.key: v.value for v in job.variables}
    remote = server_includes(options, facts)
    try:
        loaded = load_child_config(
            options.directory,
            [dict(entry) for entry in job.trigger.includes],
            name=f"trigger:include of {job.name}",
            variables=variables,
            remote=remote,
            artifact_reader=artifact_reader,
        )
    finally:
        remote.close()
    expanded = expand_config(loaded.root)
    return plan_expanded(
        options, facts, Expanded(expanded.globals, expanded.jobs, expanded.hidden, loaded.files)
    )


def with_planned_children(
    opts: ProjectOptions, facts: Any, jobs: tuple[JobSpec, ...], depth: int = 0
) -> list[JobSpec]:
    """`jobs` with the jobs of each bridge's child pipeline after it (`bridge > job`), for
    `pyci list`: only children known before anything runs (not `artifact:` ones), and only
    those that plan without error (`pyci run` reports the others on the bridge)."""
    listed: list[JobSpec] = []
    for job in jobs:
        listed.append(job)
        trigger = job.trigger
        if trigger is None or trigger.project or depth >= MAX_DEPTH:
            continue
        if any("artifact" in entry for entry in trigger.includes):
            continue
        options = child_options(opts, trigger)
        try:
            child = plan_child(options, facts, job, _no_artifacts)
        except PyciError:
            continue
        prefix = job.name + SEPARATOR
        children = tuple(_prefixed(spec, prefix) for spec in child.jobs)
        listed += with_planned_children(options, facts, children, depth + 1)
    return listed


def _no_artifacts(job: str, path: str) -> str:
    raise AssertionError("static children have no artifact includes")


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


def _prefixed(job: JobSpec, prefix: str) -> JobSpec:
    """A child's job named `bridge > job`; what it needs and takes artifacts from, likewise.
    Its CI_JOB_NAME stays the child's own (the variables were made before)."""
    needs = None
    if job.needs is not None:
        needs = tuple(dataclasses.replace(n, job=prefix + n.job) for n in job.needs)
    dependencies = None
    if job.dependencies is not None:
        dependencies = tuple(prefix + name for name in job.dependencies)
    return dataclasses.replace(job, name=prefix + job.name, needs=needs, dependencies=dependencies)


def _failed(reason: str, message: str) -> JobOutcome:
    return JobOutcome("failed", failure_reason=reason, message=message)  # type: ignore[arg-type]
