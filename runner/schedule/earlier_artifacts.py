"""What a partial run (`pyci run JOB`) hands its jobs from earlier runs, said in one line each.

A job whose artifact sources are not part of this run receives what the last run of the same
pipeline file stored for them (runner.build.artifacts keys the store by that file). The user
hears which job's artifacts are used, how old they are and of which commit; and, for a source
that declares artifacts but has none stored, which job to run first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from runner.build.artifacts import DEFAULT_PIPELINE_FILE, ArtifactStore
from runner.core.jobspec import JobSpec
from runner.schedule.graph import JobGraph


def earlier_artifacts_notes(
    store: ArtifactStore,
    selected: Sequence[JobSpec],
    pipeline: Sequence[JobSpec],
    pipeline_file: str,
    now: float | None = None,
) -> list[str]:
    graph = JobGraph(selected, pipeline)
    by_name = {job.name: job for job in pipeline}
    running = {job.name for job in selected}
    notes: list[str] = []
    seen: set[str] = set()
    for job in selected:
        for source in graph.artifact_sources(job):
            if source in running or source in seen:
                continue
            seen.add(source)
            meta = store.metadata(source)
            if meta is not None:
                notes.append(_using(source, meta, pipeline_file, now or time.time()))
            elif source in by_name and not by_name[source].artifacts.empty:
                option = "" if pipeline_file == DEFAULT_PIPELINE_FILE else f"-f {pipeline_file} "
                notes.append(
                    f"{source} has no artifacts from an earlier run of {pipeline_file}: "
                    f"run `pyci run {option}{source}` first, or add --needs"
                )
    return notes


def _using(source: str, meta: dict, pipeline_file: str, now: float) -> str:
    facts = []
    stored_at = meta.get("stored_at")
    if isinstance(stored_at, int | float):
        facts.append(f"{_age(now - stored_at)} ago")
    commit = meta.get("commit")
    if isinstance(commit, str) and commit:
        facts.append(f"commit {commit[:8]}")
    origin = meta.get("origin")
    where = f"downloaded from {origin}" if origin else f"from the last run of {pipeline_file}"
    detail = f" ({', '.join(facts)})" if facts else ""
    return f"using the artifacts of {source} {where}{detail}"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
