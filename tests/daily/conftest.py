"""Fixtures for the daily-use tests: a small git project, pyci as a child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import isolated_env
from tests.gitutil import git
from tests.run.conftest import REPO_ROOT


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """pyci's environment: its own image store, run dir, builds dir and temp dir."""
    return isolated_env(tmp_path, REPO_ROOT)


def make_project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A committed git project at <tmp_path>/group/demo holding `files`."""
    repo = tmp_path / "group" / "demo"
    repo.mkdir(parents=True)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo")
    return repo
