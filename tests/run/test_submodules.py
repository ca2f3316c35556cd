"""`GIT_SUBMODULE_STRATEGY` through `pyci run`: each job's view of the run's shared checkout
(a copy-on-write overlay in a container) gets the submodules the strategy asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitutil import git

PIPELINE = """
with-lib:
  variables: {GIT_SUBMODULE_STRATEGY: normal}
  script: [cat vendor/lib/lib.txt]
without-lib:
  script: ['test -z "$(ls -A vendor/lib)"']
"""


def make_project(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("from the submodule\n")
    git(lib, "add", ".")
    git(lib, "commit", "-q", "-m", "lib")
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitlab-ci.yml").write_text(PIPELINE)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "project")
    return repo


@pytest.mark.parametrize("executor", ["shell", "container"])
def test_each_job_gets_the_submodules_its_strategy_asks_for(tmp_path, pyci, executor):
    run = pyci(make_project(tmp_path), "--executor", executor)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "from the submodule" in run.lines("with-lib")
    assert run.jobs["without-lib"]["status"] == "success"
