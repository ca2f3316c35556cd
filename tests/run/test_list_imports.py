"""`pyci list` imports what listing needs, not what running or the network would
(docs/startup.md): a design kept by plain lazy imports, checked here in a fresh interpreter.
Before, every pipeline load imported httpx (through the include reader) and `list` imported
the scheduler (through the child pipelines)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.gitutil import git

PIPELINE = """\
include:
  - local: ci/jobs.yml
stages: [build, test]
bridge:
  stage: test
  trigger:
    include: ci/child.yml
"""

PROGRAM = """\
import contextlib, io, json, sys
from runner.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["list"])
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""

NOT_FOR_LISTING = (
    "httpx",  # ~40 ms: only a request to a GitLab server needs it
    "runner.gitlab.client",
    "runner.schedule",  # running jobs
    "runner.child_pipeline",  # running bridges (planning children is runner.child_plan)
    "runner.build",
    "executors.container",
    "pyroute2",
    "rich",  # drawing a run
)


def test_pyci_list_imports_nothing_of_running_or_fetching(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / ".gitlab-ci.yml").write_text(PIPELINE)
    (tmp_path / "ci" / "jobs.yml").write_text("build:\n  stage: build\n  script: make\n")
    (tmp_path / "ci" / "child.yml").write_text("child-job:\n  script: echo child\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "remote", "add", "origin", "https://gitlab.example.com/group/project.git")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "listed")
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["code"] == 0
    assert "bridge > child-job" in result["out"]  # the child was planned, and listed
    loaded = [
        name
        for name in result["modules"]
        if any(name == top or name.startswith(top + ".") for top in NOT_FOR_LISTING)
    ]
    assert loaded == []
