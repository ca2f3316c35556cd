"""`retry` becomes a RetrySpec with GitLab's defaults (Ci::RetryJobService)."""

import pytest

from runner.config.source import YamlMap
from runner.config.validate import validate_job
from runner.plan.build_jobspec import retry_spec


@pytest.mark.parametrize(
    ("retry", "when", "exit_codes"),
    [
        (2, ("always",), ()),
        ({"max": 2}, ("always",), ()),
        # exit_codes alone: only those codes retry, no failure reason does
        ({"max": 2, "exit_codes": [137]}, (), (137,)),
        ({"max": 2, "exit_codes": 137}, (), (137,)),
        ({"max": 1, "when": "script_failure", "exit_codes": [1]}, ("script_failure",), (1,)),
    ],
)
def test_retry_defaults_follow_gitlab(retry, when, exit_codes):
    config, problems = validate_job("job", YamlMap({"script": ["true"], "retry": retry}))
    assert problems == []
    spec = retry_spec(config.retry)
    assert (spec.when, spec.exit_codes) == (when, exit_codes)
