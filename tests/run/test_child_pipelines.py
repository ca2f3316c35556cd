"""Child pipelines beyond the scenario case: `pyci list` shows them nested, a child that
cannot be created fails its bridge with GitLab's reason and the errors in the bridge's log,
and a child from `include:project` comes from the GitLab server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fake_gitlab import FakeGitLab
from tests.gitutil import git


def make_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "project"
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    return repo


PARENT = """
build:
  stage: build
  script: echo build
bridge:
  stage: test
  trigger:
    include: child.yml
    strategy: depend
"""


def test_list_shows_children_nested_under_their_bridge(tmp_path, capsys, monkeypatch):
    from runner.cli import main

    repo = make_repo(
        tmp_path,
        {".gitlab-ci.yml": PARENT, "child.yml": "a:\n  script: x\nb:\n  needs: [a]\n  script: y\n"},
    )
    monkeypatch.chdir(repo)
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["needs"]) for r in rows] == [
        ("build", None),
        ("bridge", None),
        ("bridge > a", None),
        ("bridge > b", ["bridge > a"]),
    ]


def test_a_child_that_cannot_be_created_fails_its_bridge(tmp_path, pyci):
    repo = make_repo(
        tmp_path, {".gitlab-ci.yml": PARENT, "child.yml": "a:\n  script: x\n  when: sometimes\n"}
    )
    run = pyci(repo, "--executor", "shell")
    assert run.exit_code == 1
    assert run.jobs["bridge"]["failure_reason"] == "downstream_pipeline_creation_failed"
    log = run.log("bridge")
    assert "the child pipeline could not be created" in log
    assert "jobs:a when" in log  # the child's own error, in GitLab's words


def test_a_child_from_another_project_on_the_server(tmp_path, pyci, monkeypatch):
    monkeypatch.setenv("PYCI_HOME", str(tmp_path / "home"))
    with FakeGitLab() as gitlab:
        templates = gitlab.add_project("ci/templates")
        templates.refs["v2"] = {"child.yml": "remote-child:\n  script: echo from-the-server\n"}
        parent = (
            "bridge:\n  trigger:\n    include:\n      - project: ci/templates\n"
            "        ref: v2\n        file: child.yml\n    strategy: depend\n"
        )
        repo = make_repo(tmp_path, {".gitlab-ci.yml": parent})
        run = pyci(repo, "--executor", "shell", "--gitlab-url", gitlab.url)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.jobs["bridge > remote-child"]["status"] == "success"
    assert "from-the-server" in run.lines("bridge > remote-child")
