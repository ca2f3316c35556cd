"""GitLab's `retry`: whether a failed attempt is tried again.

GitLab retries when the failure reason is listed in `retry:when` (or `when` holds `always`)
*or* the exit code is listed in `retry:exit_codes`, as long as fewer than `retry:max` retries
happened. Without `retry:when`, GitLab's default is `always` only when no `exit_codes` are
given; the planner expresses that by passing `when=()` alongside exit codes.
"""

from __future__ import annotations

from runner.core.events import JobOutcome
from runner.core.jobspec import RetrySpec

# GitLab's retry:when names for the failure reasons that exist locally.
_WHEN_NAMES: dict[str, tuple[str, ...]] = {
    "script_failure": ("script_failure",),
    "job_execution_timeout": ("job_execution_timeout", "stuck_or_timeout_failure"),
    "runner_system_failure": ("runner_system_failure",),
    "image_pull_failure": ("runner_system_failure", "unknown_failure"),
    "out_of_memory": ("script_failure",),
}


def should_retry(retry: RetrySpec, outcome: JobOutcome, attempt: int) -> bool:
    """`attempt` is the 1-based number of the attempt that produced `outcome`."""
    if outcome.status != "failed" or outcome.failure_reason == "canceled":
        return False
    if attempt > retry.max:  # `max` counts retries, not attempts
        return False
    reasons = _WHEN_NAMES.get(outcome.failure_reason or "", ("unknown_failure",))
    by_reason = "always" in retry.when or any(name in retry.when for name in reasons)
    by_exit_code = outcome.exit_code is not None and outcome.exit_code in retry.exit_codes
    return by_reason or by_exit_code
