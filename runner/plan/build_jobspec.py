"""From a validated job model (and what planning decided about it) to the frozen `JobSpec`.

Only shapes change here: lists become tuples, long-form models become the jobspec's plain
records, durations become seconds. Every decision (which `when`, which needs, which variables)
was made before and arrives as arguments, so this module has no GitLab semantics of its own
beyond how each keyword maps onto the runner's job payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.config.models_base import parse_duration
from runner.core.jobspec import (
    AllowFailure,
    ArtifactsSpec,
    CacheKey,
    CacheSpec,
    ImageSpec,
    JobSpec,
    Need,
    RetrySpec,
    ServiceSpec,
    TriggerSpec,
    Variable,
)
from runner.plan.job_variables import to_variables


@dataclass(frozen=True)
class Decision:
    """What planning decided for one created job (rules, matrix, needs already applied)."""

    name: str
    stage: str
    stage_index: int
    when: str
    allow_failure: AllowFailure
    start_in: float | None
    variables: tuple[Variable, ...]
    needs: tuple[Need, ...] | None
    dependencies: tuple[str, ...] | None
    node_index: int | None
    node_total: int | None
    ignored_keys: tuple[str, ...] = ()
    environment: str | None = None  # the environment name, expanded
    # the job's variables from the YAML (global, job, matrix, rules): what a bridge job
    # forwards to its child pipeline with `forward:yaml_variables`
    yaml_variables: tuple[Variable, ...] = ()


def build_jobspec(job: Any, decision: Decision) -> JobSpec:
    """`job` is a runner.config.models.JobConfig after extends/default were applied."""
    return JobSpec(
        name=decision.name,
        stage=decision.stage,
        stage_index=decision.stage_index,
        script=tuple(job.script or ()),
        before_script=tuple(job.before_script or ()),
        after_script=tuple(job.after_script or ()),
        variables=decision.variables,
        image=image_spec(job.image),
        services=tuple(service_spec(service) for service in job.services or ()),
        artifacts=artifacts_spec(job.artifacts),
        cache=tuple(cache_spec(cache) for cache in job.cache or ()),
        when=decision.when,  # type: ignore[arg-type]
        start_in=decision.start_in,
        allow_failure=decision.allow_failure,
        retry=retry_spec(job.retry),
        timeout=parse_duration(job.timeout) if job.timeout else None,
        needs=decision.needs,
        dependencies=decision.dependencies,
        coverage=job.coverage,
        environment=decision.environment,
        node_index=decision.node_index,
        node_total=decision.node_total,
        ignored_keys=decision.ignored_keys,
        trigger=trigger_spec(job.trigger, decision.yaml_variables),
    )


def trigger_spec(trigger: Any, yaml_variables: tuple[Variable, ...]) -> TriggerSpec | None:
    """`trigger:` as the scheduler needs it: include entries as plain mappings."""
    if trigger is None:
        return None
    includes = tuple(entry.model_dump(exclude_none=True) for entry in trigger.include or ())
    forward = trigger.forward
    return TriggerSpec(
        includes=includes,
        project=trigger.project,
        branch=trigger.branch,
        strategy=trigger.strategy,
        forward_yaml_variables=forward.yaml_variables if forward else True,
        forward_pipeline_variables=forward.pipeline_variables if forward else False,
        inputs=dict(trigger.inputs) if trigger.inputs else None,
        variables=yaml_variables,
    )


def image_spec(image: Any) -> ImageSpec | None:
    if image is None:
        return None
    docker = image.docker
    return ImageSpec(
        name=image.name,
        entrypoint=tuple(image.entrypoint) if image.entrypoint is not None else None,
        pull_policy=tuple(image.pull_policy),
        user=docker.user if docker else None,
        platform=docker.platform if docker else None,
    )


def service_spec(service: Any) -> ServiceSpec:
    return ServiceSpec(
        name=service.name,
        aliases=tuple(service.alias),
        entrypoint=tuple(service.entrypoint) if service.entrypoint is not None else None,
        command=tuple(service.command) if service.command is not None else None,
        variables=tuple(to_variables(service.variables)),
        pull_policy=tuple(service.pull_policy),
    )


def artifacts_spec(artifacts: Any) -> ArtifactsSpec:
    if artifacts is None:
        return ArtifactsSpec()
    reports = []
    for kind, paths in artifacts.reports.items():
        if kind == "coverage_report":
            # a model with `path` and `coverage_format`; the runner only uploads the file
            paths = [paths.path] if getattr(paths, "path", None) else []
        reports.append((kind, tuple(paths)))
    return ArtifactsSpec(
        paths=tuple(artifacts.paths),
        exclude=tuple(artifacts.exclude),
        untracked=artifacts.untracked,
        when=artifacts.when,
        name=artifacts.name,
        expire_in=artifacts.expire_in,
        reports=tuple(reports),
    )


def cache_spec(cache: Any) -> CacheSpec:
    key = cache.key
    return CacheSpec(
        key=CacheKey(value=key.value, files=tuple(key.files), prefix=key.prefix),
        paths=tuple(cache.paths),
        untracked=cache.untracked,
        policy=cache.policy,
        when=cache.when,
        fallback_keys=tuple(cache.fallback_keys),
        unprotect=cache.unprotect,
    )


def retry_spec(retry: Any) -> RetrySpec:
    if retry is None:
        return RetrySpec()
    # GitLab retries on any failure by default, but once `exit_codes` is given an absent
    # `when` means "no reason" (Ci::RetryJobService#options_retry_when).
    if "when" in retry.model_fields_set or not retry.exit_codes:
        when = tuple(retry.when)
    else:
        when = ()
    return RetrySpec(max=retry.max, when=when, exit_codes=tuple(retry.exit_codes))
