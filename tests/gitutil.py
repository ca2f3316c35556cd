"""git as the tests run it: one identity, fixed dates and no user or system configuration, so
that a repository made by a test is the same on every machine and in every run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Scenario",
    "GIT_AUTHOR_EMAIL": "scenario@example.com",
    "GIT_COMMITTER_NAME": "Scenario",
    "GIT_COMMITTER_EMAIL": "scenario@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """`git ARGS` in `cwd`; its output, stripped. A failure raises CalledProcessError."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()
