"""Child pipelines, planned: what a bridge's `trigger:include` creates, before anything runs.

`pyci list` shows the jobs of the children it can plan up front; a run plans each child when
its bridge starts (runner/child_pipeline.py runs it). A child is loaded from the files its
bridge names, planned like any pipeline with `CI_PIPELINE_SOURCE=parent_pipeline` and the
bridge's forwarded variables as its pipeline variables, and its jobs are named `bridge > job`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from runner.core.errors import PyciError
from runner.core.jobspec import JobSpec, TriggerSpec
from runner.project import ProjectOptions

# GitLab lets a parent pipeline have children and grandchildren, no deeper
# (doc/ci/pipelines/downstream_pipelines.md: "up to two levels of child pipelines").
MAX_DEPTH = 2
SEPARATOR = " > "


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
        children = tuple(prefixed(spec, prefix) for spec in child.jobs)
        listed += with_planned_children(options, facts, children, depth + 1)
    return listed


def _no_artifacts(job: str, path: str) -> str:
    raise AssertionError("static children have no artifact includes")


def prefixed(job: JobSpec, prefix: str) -> JobSpec:
    """A child's job named `bridge > job`; what it needs and takes artifacts from, likewise.
    Its CI_JOB_NAME stays the child's own (the variables were made before)."""
    needs = None
    if job.needs is not None:
        needs = tuple(dataclasses.replace(n, job=prefix + n.job) for n in job.needs)
    dependencies = None
    if job.dependencies is not None:
        dependencies = tuple(prefix + name for name in job.dependencies)
    return dataclasses.replace(job, name=prefix + job.name, needs=needs, dependencies=dependencies)
