"""Fixtures for the daily-use tests: a small git project, pyci as a child process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.run.conftest import REPO_ROOT, git


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """pyci's environment: its own image store, run dir, builds dir and temp dir."""
    for name in ("home", "run", "builds", "tmp"):
        (tmp_path / name).mkdir()
    return {
        **os.environ,
        "PYCI_HOME": str(tmp_path / "home"),
        "PYCI_RUN_DIR": str(tmp_path / "run"),
        "PYCI_BUILDS_DIR": str(tmp_path / "builds"),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONPATH": str(REPO_ROOT),
    }


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
