"""The scenario corpus: every folder under tests/cases/ is one pipeline and its expected answer.

A scenario folder holds a `.gitlab-ci.yml` (and whatever it includes) plus one expectation:

- `expected.json`: the exact stdout of `pyci list --json`, or
- `expected-errors.txt`: the exact stderr lines of that command, which must then exit 1;
- optionally `expected-stderr.txt` (exact stderr of a successful run), `args.txt` (more
  arguments, one per line: `--all`, `-f other.yml`, ...), `variables.txt` (`KEY=VALUE` lines,
  passed as `--variable`), `branch.txt` (the branch to commit on instead of `main`),
  `changed.txt` (paths that a second commit on that branch creates or changes, for
  `rules:changes`; the first commit is on `main`) and `tag.txt` (a tag on the last commit,
  checked out detached, as a tag pipeline sees it).

Each scenario is copied into a fresh git repository in tmp_path (one commit of all its files on
`main`), so predefined variables such as CI_COMMIT_BRANCH are the same on every machine, and is
run through the real command line in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runner.cli import main
from tests.gitutil import git

CASES = Path(__file__).resolve().parent / "cases"
CONTROL_FILES = {
    "expected.json",
    "expected-errors.txt",
    "expected-stderr.txt",
    "args.txt",
    "variables.txt",
    "branch.txt",
    "changed.txt",
    "tag.txt",
}


def scenario_names() -> list[str]:
    return sorted(path.name for path in CASES.iterdir() if (path / ".gitlab-ci.yml").exists())


def lines_of(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def make_repository(source: Path, repo: Path) -> None:
    """All scenario files committed on `main`; then the scenario's branch and changed files."""
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns(*CONTROL_FILES))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "scenario")
    branch = lines_of(source / "branch.txt")
    if branch:
        git(repo, "checkout", "-q", "-b", branch[0])
    changed = lines_of(source / "changed.txt")
    if changed:
        for name in changed:
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(path.read_text() + "changed\n" if path.exists() else "new\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "change")
    tag = lines_of(source / "tag.txt")
    if tag:
        git(repo, "tag", "-a", tag[0], "-m", f"release {tag[0]}")
        git(repo, "checkout", "-q", "--detach", tag[0])


@pytest.mark.parametrize("name", scenario_names())
def test_scenario(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = CASES / name
    repo = tmp_path / "project"
    make_repository(source, repo)
    argv = ["list", "--json", "-C", str(repo), *lines_of(source / "args.txt")]
    for assignment in lines_of(source / "variables.txt"):
        argv += ["--variable", assignment]

    code = main(argv)
    out, err = capsys.readouterr()

    expected_errors = source / "expected-errors.txt"
    if expected_errors.exists():
        assert err.splitlines() == lines_of(expected_errors)
        assert code == 1
        assert out == ""
        return
    assert code == 0, err
    expected = (source / "expected.json").read_text()
    assert json.loads(out) == json.loads(expected)  # the readable diff first
    assert out == expected  # then the exact text, formatting included
    expected_stderr = source / "expected-stderr.txt"
    assert err.splitlines() == (lines_of(expected_stderr) if expected_stderr.exists() else [])
