"""What GitLab's YAML processor checks on a complete job beyond its JSON schema.

The models (runner.config.models) hold what the schema says; these checks need a whole,
expanded job, so `pyci validate --shape-only` leaves them out. They look at several keys at
once and all of them run, so a job's problems are reported together.
"""

from __future__ import annotations

from runner.config.models import JobConfig
from runner.config.models_base import parse_duration

START_IN_LIMIT = 7 * 86400  # GitLab: "1 week"

# (message, key): `key` is the keyword the problem is about, None for the job as a whole.
# A message starting with "config" follows the job's path (`jobs:x config ...`), any other
# follows the key (`jobs:x start_in must be blank`), as GitLab words them.
Finding = tuple[str, str | None]


def job_findings(name: str, job: JobConfig) -> list[Finding]:
    findings: list[Finding] = []
    exclusive = [key for key in ("script", "run", "trigger") if getattr(job, key) is not None]
    if len(exclusive) > 1:
        findings.append(
            (f"config these keys cannot be used together: {', '.join(exclusive)}", None)
        )
    if job.rules is not None:
        used = [
            key
            for key, value in (
                ("only", job.only),
                ("except", job.except_),
                ("start_in", job.start_in),
            )
            if value is not None
        ]
        if used:
            findings.append((f"config key may not be used with `rules`: {', '.join(used)}", None))
    if job.start_in is not None and job.rules is None:
        if job.when != "delayed":
            findings.append(("start_in must be blank", "start_in"))
        elif not _is_duration(job.start_in, START_IN_LIMIT):
            findings.append(("start_in should be a duration of at most 1 week", "start_in"))
    if job.timeout is not None and not _is_duration(job.timeout):
        findings.append(("timeout config should be a duration", "timeout"))
    if job.dependencies and job.needs:
        needed = {need.job for need in job.needs}
        missing = [dependency for dependency in job.dependencies if dependency not in needed]
        if missing:
            findings.append(
                (f"dependencies the {', '.join(missing)} should be part of needs", "dependencies")
            )
    if job.publish is not None and not _pages_job(name, job):
        findings.append(("publish can only be used within a `pages` job", "publish"))
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
