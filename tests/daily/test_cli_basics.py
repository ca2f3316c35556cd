"""`pyci --version`, and one exit code for an invalid file whichever command reads it."""

from __future__ import annotations

import importlib.metadata

import pytest

from tests.cli import run_pyci as pyci
from tests.daily.conftest import make_project

INVALID = "job:\n  script: [echo hi]\n  when: sometimes\n"


def test_version_comes_from_the_package_metadata(tmp_path, env):
    run = pyci(tmp_path, env, "--version")
    assert run.returncode == 0
    assert run.stdout == f"pyci {importlib.metadata.version('pyci')}\n"


@pytest.mark.parametrize(
    "command",
    [
        ["validate"],
        ["list"],
        ["run", "--plain", "--executor", "shell"],
        ["shell", "job", "--executor", "shell"],
    ],
)
def test_an_invalid_file_exits_1_from_every_command(tmp_path, env, command):
    repo = make_project(tmp_path, {"ci.yml": INVALID})
    run = pyci(repo, env, *command, "-f", "ci.yml")
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        "error: ci.yml:3:3: jobs:job when should be one of: on_success, on_failure, always, "
        "manual, delayed"
    ]


def test_a_missing_file_is_a_usage_error_from_every_command(tmp_path, env):
    repo = make_project(tmp_path, {"ci.yml": "job:\n  script: [echo hi]\n"})
    for command in (["validate"], ["list"], ["run", "--plain"], ["shell", "job"]):
        run = pyci(repo, env, *command, "-f", "missing.yml")
        assert run.returncode == 2, (command, run.stderr)
