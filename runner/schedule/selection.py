"""Which jobs a `pyci run` runs: the whole pipeline, or the jobs and stages the user named.

Named jobs run alone (what they wait for stays out, its artifacts come from earlier runs)
unless `--needs` adds everything they wait for, transitively. Naming a manual job plays it;
`--manual JOB` plays a manual job within the whole pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runner.core.errors import UsageError
from runner.core.jobspec import JobSpec
from runner.schedule.graph import with_prerequisites


@dataclass(frozen=True)
class Selection:
    jobs: tuple[JobSpec, ...]  # what runs, in pipeline order
    played: frozenset[str]  # manual jobs to start
    forced: frozenset[str]  # named jobs (run whatever their `when` says when alone)
    partial: bool  # not the whole pipeline


def select_jobs(
    pipeline_jobs: Sequence[JobSpec],
    excluded: dict[str, str],
    *,
    names: Sequence[str] = (),
    stages: Sequence[str] = (),
    manual: Sequence[str] = (),
    with_needs: bool = False,
) -> Selection:
    """`excluded`: job name -> why the pipeline left it out (rules, `when: never`)."""
    by_name = {job.name: job for job in pipeline_jobs}
    known_stages = {job.stage for job in pipeline_jobs}
    names = [instance for name in names for instance in _instances(name, pipeline_jobs)]
    manual = [instance for name in manual for instance in _instances(name, pipeline_jobs)]
    for name in (*names, *manual):
        _check_known(name, by_name, excluded, known_stages)
    for stage in stages:
        if stage not in known_stages:
            listed = ", ".join(sorted(known_stages)) or "none"
            raise UsageError(
                f"--stage {stage}: no job of this pipeline is in it (stages: {listed})"
            )
    if not names and not stages:
        return Selection(tuple(pipeline_jobs), frozenset(manual), frozenset(), partial=False)
    wanted = list(dict.fromkeys([*names, *(j.name for j in pipeline_jobs if j.stage in stages)]))
    if with_needs:
        jobs = with_prerequisites(pipeline_jobs, wanted)
    else:
        jobs = tuple(job for job in pipeline_jobs if job.name in wanted)
    return Selection(jobs, frozenset([*manual, *wanted]), frozenset(wanted), partial=True)


def _instances(name: str, pipeline_jobs: Sequence[JobSpec]) -> list[str]:
    """A `parallel:` job named as written in the YAML stands for all its instances, which
    GitLab names `test 1/3` (`parallel: N`) or `test: [a, b]` (`parallel:matrix`)."""
    if any(job.name == name for job in pipeline_jobs):
        return [name]
    numbered = re.compile(re.escape(name) + r" \d+/\d+")
    instances = [
        job.name
        for job in pipeline_jobs
        if job.node_total is not None
        and (numbered.fullmatch(job.name) or job.name.startswith(f"{name}: ["))
    ]
    return instances or [name]


def _check_known(
    name: str, by_name: dict[str, JobSpec], excluded: dict[str, str], stages: set[str]
) -> None:
    if name in by_name:
        return
    if name in excluded:
        raise UsageError(f"job {name!r} is not in this pipeline: {excluded[name]}")
    if name in stages:
        raise UsageError(f"no job named {name!r}; it is a stage: run it with --stage {name}")
    close = [other for other in by_name if name.lower() in other.lower()][:5]
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    raise UsageError(f"no job named {name!r} in the pipeline{hint}")
