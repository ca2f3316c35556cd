"""retry: max, when and exit_codes as GitLab combines them."""

import pytest

from runner.core.events import JobOutcome
from runner.core.jobspec import RetrySpec
from runner.schedule.retry import should_retry

SCRIPT_FAILURE = JobOutcome("failed", exit_code=3, failure_reason="script_failure")
TIMEOUT = JobOutcome("failed", failure_reason="job_execution_timeout")


@pytest.mark.parametrize(
    ("retry", "outcome", "attempt", "expected"),
    [
        (RetrySpec(max=0), SCRIPT_FAILURE, 1, False),
        (RetrySpec(max=2), SCRIPT_FAILURE, 1, True),
        (RetrySpec(max=2), SCRIPT_FAILURE, 2, True),
        (RetrySpec(max=2), SCRIPT_FAILURE, 3, False),
        (RetrySpec(max=2), JobOutcome("success", exit_code=0), 1, False),
        (RetrySpec(max=2, when=("runner_system_failure",)), SCRIPT_FAILURE, 1, False),
        (RetrySpec(max=2, when=("stuck_or_timeout_failure",)), TIMEOUT, 1, True),
        (RetrySpec(max=2, when=(), exit_codes=(3,)), SCRIPT_FAILURE, 1, True),
        (RetrySpec(max=2, when=(), exit_codes=(4,)), SCRIPT_FAILURE, 1, False),
        (
            RetrySpec(max=2, when=("job_execution_timeout",), exit_codes=(3,)),
            SCRIPT_FAILURE,
            1,
            True,
        ),
        (RetrySpec(max=2), JobOutcome("canceled", failure_reason="canceled"), 1, False),
    ],
)
def test_should_retry(retry, outcome, attempt, expected):
    assert should_retry(retry, outcome, attempt) is expected
