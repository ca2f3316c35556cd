"""git through one door (runner/gitrepo.py): the repository is the project's, whatever a git
hook put in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.gitutil import GIT_ENV, git

ROOT = Path(__file__).resolve().parents[2]


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        git(path, *command)
    return path


def test_a_git_hooks_environment_does_not_redirect_pyci(tmp_path: Path):
    """A pre-push hook running `pyci run` has GIT_DIR, GIT_WORK_TREE and GIT_INDEX_FILE naming
    its own repository: the job still gets the project's sources, and the other repository's
    index is left alone."""
    pipeline = 'job:\n  script: ["cat mine.txt"]\n'
    project = make_repo(tmp_path / "project", {".gitlab-ci.yml": pipeline, "mine.txt": "ours\n"})
    other = make_repo(tmp_path / "other", {"theirs.txt": "theirs\n"})
    index_before = (other / ".git" / "index").read_bytes()
    hook_env = {
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(other),
        "GIT_INDEX_FILE": str(other / ".git" / "index"),
        "PYCI_BUILDS_DIR": str(tmp_path / "builds"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", "--plain", "--executor", "shell", "-C",
         str(project)],
        cwd=ROOT, env={**os.environ, **GIT_ENV, **hook_env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[job] ours" in done.stdout.splitlines()
    assert (other / ".git" / "index").read_bytes() == index_before
