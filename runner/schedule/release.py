"""GitLab's rules for releasing a job, as pure functions over the statuses of what it waits for.

GitLab folds the statuses of a job's prerequisites (all jobs of earlier stages, or the jobs it
`needs`) into one composite status, then compares it with the job's `when`:

- an allowed failure counts as "success with warnings"; an unplayed manual job that may fail
  (a non-blocking manual job) is "ignored"; a manual job that may not fail blocks.
- `on_success`, `manual` and `delayed` run when the composite is success (stage ordering also
  accepts "skipped"); `on_failure` runs when it is failed; `always` runs when it is complete.
- with `needs`, a job is skipped as soon as one of its needs did not run at all (skipped or an
  unplayed non-blocking manual job): GitLab's DAG rule.
- a composite that is still incomplete (running, created, or held by a blocking manual job)
  means: wait.

Nothing here knows about threads or time; the scheduler asks `decide` after every change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from runner.core.events import JobStatus
from runner.core.jobspec import JobSpec

Composite = Literal["success", "failed", "canceled", "skipped", "waiting", "blocked"]
Decision = Literal["wait", "run", "skip", "manual", "blocked"]

# Statuses after which a job will not change any more (from the scheduler's point of view).
DONE: frozenset[JobStatus] = frozenset({"success", "failed", "canceled", "skipped", "manual"})


@dataclass(frozen=True)
class Prior:
    """What the scheduler knows about one prerequisite job."""

    status: JobStatus
    allow_failure: bool = False  # failed but permitted, or a manual job that may fail


def composite(priors: Iterable[Prior], dag: bool) -> Composite:
    """Fold prerequisite statuses as GitLab's `Ci::Status::Composite` does for job processing."""
    kinds: set[str] = set()
    for prior in priors:
        if prior.status in ("failed", "canceled") and prior.allow_failure:
            kinds.add("warning")
        elif prior.status == "manual" and prior.allow_failure:
            kinds.add("ignored")
        else:
            kinds.add(prior.status)
    if not kinds:
        return "success"
    if dag and kinds & {"skipped", "ignored"}:
        return "skipped"
    if kinds <= {"skipped", "ignored"}:
        return "skipped"
    if kinds <= {"success", "skipped", "warning", "ignored"}:
        return "success"
    if kinds & {"created", "pending", "running"}:
        return "waiting"
    if "manual" in kinds:
        return "blocked"
    if kinds <= {"canceled", "success", "skipped", "warning", "ignored"}:
        return "canceled"
    return "failed"


def decide(job: JobSpec, state: Composite, played: bool, dag: bool) -> Decision:
    """What to do with `job` now, given the composite status of its prerequisites.

    `played`: the user asked for this manual job (named it, or `--manual JOB`).
    """
    if state == "waiting":
        return "wait"
    if state == "blocked":
        return "blocked"
    when = job.when
    if when == "never":
        return "skip"
    if state == "canceled":
        return "skip"
    if when == "on_failure":
        return "run" if state == "failed" else "skip"
    if when == "always":
        return "run"
    accepted = ("success",) if dag else ("success", "skipped")
    if state not in accepted:
        return "skip"
    if when == "manual" and not played:
        return "manual"
    return "run"


def skip_message(job: JobSpec, state: Composite) -> str:
    """Why a job did not run, in the user's terms."""
    if job.when == "never":
        return "when: never"
    if job.when == "on_failure":
        return "when: on_failure and nothing before it failed"
    if state == "canceled":
        return "the pipeline was canceled"
    if state == "skipped":
        return "a job it needs did not run"
    return "an earlier job failed"


def manual_blocks(job: JobSpec) -> bool:
    """A manual job that may not fail holds back later stages until someone plays it."""
    return job.when == "manual" and not job.allow_failure.allowed
