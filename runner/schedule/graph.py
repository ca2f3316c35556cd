"""Who waits for whom, and who receives whose artifacts, within one run.

A job with `needs` waits for exactly those jobs (those that are part of this run: an optional
need, or a need outside a partial run, drops out); a job without `needs` waits for every job of
an earlier stage. Artifacts come, as GitLab's `Ci::BuildDependencies` picks them, from the
`needs` that keep `artifacts: true` (a job with `needs`) or every job of an earlier stage of
the pipeline (without), narrowed to `dependencies` when given (`dependencies: []`: none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from runner.core.jobspec import JobSpec


class JobGraph:
    """`jobs`: this run, in pipeline order; `pipeline`: every job of the pipeline (default:
    `jobs`), where a partial run looks for artifacts left by earlier runs."""

    def __init__(self, jobs: Sequence[JobSpec], pipeline: Sequence[JobSpec] | None = None) -> None:
        self.jobs: tuple[JobSpec, ...] = tuple(jobs)
        self.pipeline: tuple[JobSpec, ...] = tuple(pipeline) if pipeline else self.jobs
        self.by_name: dict[str, JobSpec] = {job.name: job for job in self.jobs}
        if len(self.by_name) != len(self.jobs):
            raise ValueError("job names must be unique")
        self.prerequisites: dict[str, tuple[str, ...]] = {
            job.name: self._prerequisites(job) for job in self.jobs
        }

    def _prerequisites(self, job: JobSpec) -> tuple[str, ...]:
        if job.needs is not None:
            return tuple(dict.fromkeys(n.job for n in job.needs if n.job in self.by_name))
        return tuple(other.name for other in self.jobs if other.stage_index < job.stage_index)

    def artifact_sources(self, job: JobSpec) -> tuple[str, ...]:
        """Jobs whose artifacts `job` receives (names may lie outside this run)."""
        if job.needs is not None:
            candidates = tuple(dict.fromkeys(n.job for n in job.needs if n.artifacts))
        else:
            candidates = tuple(
                other.name for other in self.pipeline if other.stage_index < job.stage_index
            )
        if job.dependencies is None:
            return candidates
        return tuple(name for name in candidates if name in job.dependencies)


def with_prerequisites(all_jobs: Sequence[JobSpec], wanted: Iterable[str]) -> tuple[JobSpec, ...]:
    """`wanted` plus everything they wait for, transitively, in pipeline order (`--needs`)."""
    graph = JobGraph(all_jobs)
    chosen: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        chosen.add(name)
        todo.extend(graph.prerequisites[name])
    return tuple(job for job in graph.jobs if job.name in chosen)
