"""The README's main command: examples/.gitlab-ci.yml runs green, offline, end to end."""

from __future__ import annotations

import shutil

from tests.gitutil import git
from tests.run.conftest import REPO_ROOT


def test_example_pipeline_passes(tmp_path, pyci):
    repo = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "examples", repo / "examples")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    run = pyci(repo, "-f", "examples/.gitlab-ci.yml")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["status"] == "success"
    assert run.report["name"] == "calc pipeline on main"  # workflow:name, expanded
    statuses = {name: job["status"] for name, job in run.jobs.items()}
    assert statuses == {
        "deps": "success",
        "build": "success",
        "lint": "success",
        "test: [-B]": "success",
        "test: [-O]": "success",
        "package": "success",
        "deploy-preview": "success",
        "deploy-production": "manual",
    }
    assert run.jobs["test: [-O]"]["coverage"] == "93.8"
    assert "cache miss, vendoring" in run.lines("deps")
    assert "built calc 1.2.0" in run.lines("build")
    assert "packaging calc 1.2.0" in run.lines("package")  # VERSION from build's dotenv
    assert "14" in run.lines("deploy-preview")  # 2 + 3 * 4, from the unpacked package
    assert "test finished with status success" in run.lines("test: [-B]")
    assert run.started_at("package") > run.finished_at("test: [-O]")
    assert run.started_at("lint") < run.finished_at("build")  # needs: [] starts at once
