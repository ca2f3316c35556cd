"""A shell runner: jobs from the server run on the host (no isolation, as gitlab-runner's
shell executor), and only a container runner needs a default image."""

from __future__ import annotations

import json
import subprocess

from tests.runner_mode.conftest import Box
from tests.runner_mode.test_end_to_end import assert_reported


def test_a_shell_runner_runs_jobs_on_the_host(box: Box) -> None:
    job = box.queue("on-host", ["cat hello.txt", "test -d /proc/1"], image="alpine:3.20")
    run = box.run("--max-builds", "1", "--executor", "shell")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "success")
    assert "hello from the repository" in trace
    assert "The shell executor ignores image: alpine:3.20" in trace
    first = box.gitlab.requests_to("POST", "/jobs/request")[0]
    assert json.loads(first.body)["info"]["executor"] == "shell"


def test_only_a_container_runner_needs_a_default_image(box: Box) -> None:
    args = [
        a for a in box.runner_args("--max-builds", "1") if a not in ("--default-image", box.image)
    ]
    refused = subprocess.run(
        args, env=box.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert refused.returncode == 2
    assert "--default-image: required for a container runner" in refused.stderr
    assert refused.stderr.count("\n") == 1
