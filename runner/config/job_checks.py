"""What GitLab's YAML processor checks on a complete job beyond its JSON schema.

The models (runner.config.models) hold what the schema says; these checks need a whole,
expanded job, so `pyci validate --shape-only` leaves them out. They look at several keys at
once and all of them run, so a job's problems are reported together.
"""

from __future__ import annotations

from typing import NamedTuple

from runner.config.models import JobConfig
from runner.config.models_base import parse_duration

START_IN_LIMIT = 7 * 86400  # GitLab: "1 week"


class Finding(NamedTuple):
    """One problem: `message` follows the GitLab path of `holder` inside the job
    (`jobs:x:artifacts expire in should be ...`); `at` is the key path it is about."""

    holder: tuple[str, ...]
    message: str
    at: tuple[str, ...] = ()


def job_findings(name: str, job: JobConfig) -> list[Finding]:
    findings: list[Finding] = []
    exclusive = [key for key in ("script", "run", "trigger") if getattr(job, key) is not None]
    if len(exclusive) > 1:
        keys = ", ".join(exclusive)
        findings.append(Finding((), f"config these keys cannot be used together: {keys}"))
    if job.rules is not None:
        written = (("only", job.only), ("except", job.except_), ("start_in", job.start_in))
        used = [key for key, value in written if value is not None]
        if used:
            keys = ", ".join(used)
            findings.append(Finding((), f"config key may not be used with `rules`: {keys}"))
    if job.start_in is not None and job.rules is None:
        if job.when != "delayed":
            findings.append(Finding((), "start in must be blank", ("start_in",)))
        elif not _is_duration(job.start_in, START_IN_LIMIT):
            message = "start in should be a duration of at most 1 week"
            findings.append(Finding((), message, ("start_in",)))
    if job.timeout is not None and not _is_duration(job.timeout):
        findings.append(Finding(("timeout",), "config should be a duration", ("timeout",)))
    expire_in = job.artifacts.expire_in if job.artifacts is not None else None
    if expire_in is not None and expire_in != "never" and not _is_duration(expire_in):
        at = ("artifacts", "expire_in")
        findings.append(Finding(("artifacts",), "expire in should be a duration", at))
    if job.dependencies and job.needs:
        needed = {need.job for need in job.needs}
        missing = [dependency for dependency in job.dependencies if dependency not in needed]
        if missing:
            message = f"dependencies the {', '.join(missing)} should be part of needs"
            findings.append(Finding((), message, ("dependencies",)))
    if job.publish is not None and not _pages_job(name, job):
        message = "publish can only be used within a `pages` job"
        findings.append(Finding((), message, ("publish",)))
    return findings


def _is_duration(text: str, limit: float | None = None) -> bool:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return False
    return limit is None or seconds <= limit


def _pages_job(name: str, job: JobConfig) -> bool:
    """GitLab's rule: `pages:` set (not false), or a job named `pages` without `pages: false`."""
    if job.pages is not None:
        return job.pages.enabled
    return name == "pages"
