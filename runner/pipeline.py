"""From a project directory to the planned pipeline: the top level, as a list of steps.

    load (include) -> expand (extends, default, !reference) -> validate (models)
    -> static checks (needs, dependencies, cycles) -> workflow -> rules per job -> plan

Each step is a function of its own module; this one only passes data along and gathers what
the user needs to hear. Errors of every step are collected and raised together as one
`ConfigError`, in the order GitLab reports them: configuration first, then what pipeline
creation finds (a need of a job that rules left out).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import ConfigError, ProblemCollector, PyciError, UsageError
from runner.core.jobspec import JobSpec, Variable
from runner.plan.excluded import ExcludedJob
from runner.project import ProjectOptions

if TYPE_CHECKING:
    from runner.config.remote_includes import RemoteIncludes


@dataclass(frozen=True)
class Pipeline:
    jobs: tuple[JobSpec, ...]  # created jobs, in pipeline order (stage, then file order)
    stages: tuple[str, ...]  # every stage, `.pre` first and `.post` last; JobSpec.stage_index
    excluded: tuple[ExcludedJob, ...]
    name: str | None  # workflow:name, expanded
    ignored: tuple[tuple[str, str], ...]  # (job, keyword) with no local effect
    project_dir: Path
    files: tuple[str, ...]  # every configuration file read, the root first
    facts: Any = None  # the git facts it was planned with (child pipelines reuse them)


class NoPipeline(PyciError):
    """`workflow:rules` (or rules leaving no job) decided that no pipeline is created.

    Not a failure: GitLab simply creates nothing, so the exit code is 0 and the message says
    which rule decided. `excluded` holds the jobs rules left out, when rules were evaluated.
    """

    exit_code = 0

    def __init__(self, message: str, excluded: tuple[ExcludedJob, ...] = ()):
        super().__init__(message)
        self.excluded = excluded


@dataclass(frozen=True)
class Expanded:
    """The configuration after load and expand: what `pyci show` prints from."""

    globals: dict[str, Any]
    jobs: dict[str, Any]
    hidden: dict[str, Any]
    files: tuple[str, ...]
    fetched: tuple[str, ...] = ()  # those of `files` that came from a GitLab server


def load_expanded(opts: ProjectOptions, facts: Any = None) -> Expanded:
    """Load the root file and its includes, then apply extends, default and !reference."""
    from runner.config.expand import expand_config
    from runner.config.include import load_config

    if facts is None:
        facts = _git_facts(opts)
    variables = _include_variables(opts, facts)
    matcher = _include_rule_matcher(opts, variables)
    remote = server_includes(opts, facts)
    try:
        loaded = load_config(
            opts.directory, opts.file, rule_matcher=matcher, variables=variables, remote=remote
        )
    finally:
        remote.close()
    expanded = expand_config(loaded.root)
    return Expanded(expanded.globals, expanded.jobs, expanded.hidden, loaded.files, loaded.fetched)


def load_pipeline(opts: ProjectOptions) -> Pipeline:
    """Load, expand, validate, evaluate and plan; raises ConfigError with every problem."""
    facts = opts.git_facts if opts.git_facts is not None else _git_facts(opts)
    return plan_expanded(opts, facts, load_expanded(opts, facts))


def plan_expanded(opts: ProjectOptions, facts: Any, expanded: Expanded) -> Pipeline:
    """Validate, evaluate and plan a loaded configuration (a pipeline's, or a child's)."""
    from runner.config.validate import validate_pipeline
    from runner.plan.planner import Planner
    from runner.plan.stages import only_edge_stages

    config = validate_pipeline(expanded.globals, expanded.jobs)
    planner = Planner(config, expanded.jobs, opts, facts, expanded.globals)
    problems = ProblemCollector()
    problems.extend(planner.check_expressions())
    problems.extend(planner.check_references())
    problems.raise_if_any()
    workflow = planner.decide_workflow()
    if not workflow.run:
        raise NoPipeline(workflow.reason)
    jobs, excluded, creation_problems = planner.plan(workflow)
    problems.extend(creation_problems)
    problems.raise_if_any()
    if only_edge_stages(job.stage for job in jobs):  # also true when no job is left
        raise NoPipeline(NO_JOBS_MESSAGE, tuple(excluded))
    return Pipeline(
        jobs=tuple(jobs),
        stages=planner.stages,
        excluded=tuple(excluded),
        name=workflow.name,
        ignored=planner.ignored,
        project_dir=opts.directory,
        files=expanded.files,
        facts=facts,
    )


NO_JOBS_MESSAGE = (
    "Pipeline will not run for the selected trigger. "
    "The rules configuration prevented any jobs from being added to the pipeline."
)


def report_ignored(pipeline: Pipeline, stream: Any = None, verbose: bool = False) -> None:
    """One short line on stderr naming the keywords that have no local effect and how many
    jobs use each (a real project's jobs all carry `tags:`: naming them made a line of
    thousands of characters); with `verbose`, the jobs too."""
    if not pipeline.ignored:
        return
    jobs_by_key: dict[str, list[str]] = {}
    for job, key in pipeline.ignored:
        names = jobs_by_key.setdefault(key, [])
        if job not in names:
            names.append(job)
    if verbose:
        parts = [f"{key} ({', '.join(jobs)})" for key, jobs in jobs_by_key.items()]
        line = "; ".join(parts)
    else:
        counts = [f"{key} ({_jobs(len(jobs))})" for key, jobs in jobs_by_key.items()]
        line = f"{', '.join(counts)}; --verbose names the jobs"
    print(f"note: ignored, no effect locally: {line}", file=stream or sys.stderr)


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _git_facts(opts: ProjectOptions) -> Any:
    from runner.evaluate.predefined import read_git_facts

    return read_git_facts(opts.directory)


def server_includes(opts: ProjectOptions, facts: Any) -> RemoteIncludes:
    """Where `project`, `template`, `component` and `remote` includes come from: the server
    (found as runner.gitlab.server says) behind the cache in `$PYCI_HOME/includes`."""
    from executors.images.home import default_home
    from runner.config.remote_includes import DEFAULT_TTL, IncludeSettings, RemoteIncludes
    from runner.gitlab.server import find_token, server_url

    options = opts.includes
    remote_url = facts.server_url if facts.has_remote else None
    settings = IncludeSettings(
        server_url=server_url(options.gitlab_url, remote_url),
        token_for=lambda url: find_token(url, opts.directory),
        cache_dir=default_home() / "includes",
        offline=options.offline,
        refresh=options.refresh,
        ttl=_seconds("PYCI_INCLUDE_TTL", DEFAULT_TTL),
        local_projects=options.local_projects,
    )
    return RemoteIncludes(settings)


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise UsageError(f"{variable}={text!r}: expected a number of seconds")
    return value


def _include_variables(opts: ProjectOptions, facts: Any) -> dict[str, str]:
    """What `include` paths and `include:rules` see: predefined and --variable, no YAML ones."""
    from runner.evaluate.predefined import pipeline_variables
    from runner.plan.job_variables import pipeline_source

    predefined = pipeline_variables(
        facts,
        pipeline_source=pipeline_source(opts.variables),
        config_path=_relative(opts.file, opts.directory),
    )
    variables = {variable.key: variable.value for variable in predefined}
    variables.update(opts.variables)
    return variables


def _include_rule_matcher(opts: ProjectOptions, variables: dict[str, str]) -> Any:
    changed: list[Any] = []  # the local diff, read once and only if a rule asks for it

    def matcher(rules: Any, where: Any) -> bool:
        # imported here, for files whose includes have rules (~10 ms): most files have none
        from runner.evaluate.rules import RuleContext, include_rules_match

        plain = _plain_rules(rules)
        if not changed and any(isinstance(rule, dict) and "changes" in rule for rule in plain):
            from runner.evaluate.changes import local_changed_files

            changed.append(local_changed_files(opts.directory))
        context = RuleContext(variables, opts.directory, changed[0] if changed else None)
        return include_rules_match(plain, context)

    return matcher


def _plain_rules(rules: Any) -> list[dict[str, Any]]:
    return [
        rule.model_dump(by_alias=True, exclude_none=True) if hasattr(rule, "model_dump") else rule
        for rule in rules or ()
    ]


def _relative(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory))
    except ValueError:
        return str(path)


__all__ = [
    "ConfigError",
    "ExcludedJob",
    "NoPipeline",
    "Pipeline",
    "Variable",
    "load_expanded",
    "load_pipeline",
    "report_ignored",
]
