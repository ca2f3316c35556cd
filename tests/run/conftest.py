"""Running real pipelines end to end through the `pyci` command line.

`project(name)` copies `cases/<name>/` into a fresh git repository under tmp_path (one commit on
`main`, so predefined variables are the same everywhere). `pyci(...)` runs the CLI in-process
(as a user's shell would, from the project directory, stdout not a terminal: plain output);
the interrupt tests start it as a child process instead, with TMPDIR pointing at an empty
directory of its own, so they can prove that no temporary directory and no process was left
behind. Build directories go to a PYCI_BUILDS_DIR under tmp_path in both cases.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.build.snapshot import KEPT_SUFFIX
from tests.gitutil import git

CASES = Path(__file__).resolve().parent / "cases"
REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROL_FILES = ("expect.yml",)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    project: Path
    report: dict
    junit: ET.Element | None = None

    def lines(self, job: str) -> list[str]:
        """The plain output lines of one job, without the `[job] ` prefix."""
        prefix = f"[{job}] "
        return [line[len(prefix) :] for line in self.stdout.splitlines() if line.startswith(prefix)]

    def started_at(self, job: str) -> int:
        """Index in stdout of the job's first `job started` line."""
        return self._first(job, lambda rest: rest.startswith("job started"))

    def finished_at(self, job: str) -> int:
        """Index in stdout of the job's `job succeeded/failed/canceled/skipped` line."""
        ends = ("job succeeded", "job failed", "job canceled", "job skipped", "manual job")
        return self._first(job, lambda rest: rest.startswith(ends))

    def _first(self, job: str, matches) -> int:
        prefix = f"[{job}] --- "
        for index, line in enumerate(self.stdout.splitlines()):
            if line.startswith(prefix) and matches(line[len(prefix) :]):
                return index
        raise AssertionError(f"no such line for {job} in:\n{self.stdout}")

    def log(self, job: str) -> str:
        from runner.report.logfiles import log_path

        return log_path(self.project / ".pyci" / "logs", job).read_text()

    @property
    def jobs(self) -> dict[str, dict]:
        return {job["name"]: job for job in self.report.get("jobs", [])}


@pytest.fixture
def project(tmp_path: Path):
    def make(name: str) -> Path:
        repo = tmp_path / "project"
        shutil.copytree(CASES / name, repo, ignore=shutil.ignore_patterns(*CONTROL_FILES))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "scenario")
        return repo

    return make


@pytest.fixture
def job_tmp(tmp_path: Path) -> Path:
    """TMPDIR of the pyci process under test, with its builds root (PYCI_BUILDS_DIR) beside
    it: no build directory and no temporary file may remain in either when pyci ends."""
    path = tmp_path / "tmp"
    path.mkdir()
    (tmp_path / "builds").mkdir()
    return path


def pyci_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", "run", "--plain", *args]


def child_env(job_tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TMPDIR": str(job_tmp),
        "PYCI_BUILDS_DIR": str(job_tmp.parent / "builds"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }


@pytest.fixture
def pyci(job_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("PYCI_BUILDS_DIR", str(job_tmp.parent / "builds"))

    def run(project: Path, *args: str) -> Run:
        from runner.cli import main

        report = project.parent / "report.json"
        junit = project.parent / "junit.xml"
        report.unlink(missing_ok=True)
        junit.unlink(missing_ok=True)
        monkeypatch.chdir(project)
        capsys.readouterr()
        reports = ["--json-report", str(report), "--junit-report", str(junit)]
        exit_code = main(["run", "--plain", *reports, *args])
        out, err = capsys.readouterr()
        data = json.loads(report.read_text()) if report.exists() else {}
        tree = ET.parse(junit).getroot() if junit.exists() else None
        return Run(exit_code, out, err, project, data, tree)

    return run


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes that contain `marker` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def assert_nothing_left(marker: str, job_tmp: Path) -> None:
    assert processes_mentioning(marker) == []
    assert sorted(p.name for p in job_tmp.iterdir()) == []
    builds = job_tmp.parent / "builds"
    # the per-project folder and the checkout kept for the next run may stay; no job's build
    # directory may
    left = [p for p in builds.glob("*/*") if not p.parent.name.endswith(KEPT_SUFFIX)]
    assert [str(p) for p in left] == []
