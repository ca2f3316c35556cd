"""`.pyci/` holds its own `.gitignore` (`*`): after a run, `git status` shows nothing new."""

from __future__ import annotations

import subprocess

from tests.cli import run_pyci as pyci
from tests.daily.conftest import make_project

PIPELINE = """
job:
  script: [echo hi > out.txt]
  artifacts:
    paths: [out.txt]
"""


def git_status(repo) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_run_leaves_git_status_clean(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": PIPELINE})
    run = pyci(repo, env, "run", "--plain", "--executor", "shell")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (repo / ".pyci" / "logs" / "job.log").is_file()  # there is something to ignore
    assert (repo / ".pyci" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert git_status(repo) == ""


def test_the_users_own_gitignore_in_pyci_is_kept(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": PIPELINE, ".pyci/.gitignore": "logs/\n"})
    run = pyci(repo, env, "run", "--plain", "--executor", "shell")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (repo / ".pyci" / ".gitignore").read_text() == "logs/\n"
