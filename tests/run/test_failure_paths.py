"""Every way a run can go wrong ends: `pyci run` in a child process, with both executors.

Each test runs the real CLI and waits for it under a watchdog (WATCHDOG_SECONDS): a child
still running then is a hang, and is killed and reported as one. The gates are the run's own
output (a job's line on stdout), never a sleep. After each run nothing of it may be left: no
process (found by a marker in the command line or the environment), no mount, no cgroup, no
container scratch directory named after its pid, no build directory or temporary file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from executors.container import names
from runner.build.snapshot import KEPT_SUFFIX
from runner.core.filenames import NAME_MAX
from tests.gitutil import git
from tests.processes import marked_processes
from tests.run.conftest import (
    child_env,
    processes_mentioning,
    pyci_command,
    wait_until,
)

WATCHDOG_SECONDS = 10.0
EXECUTORS = ["shell", "container"]
RUN_MARKER = "PYCI_FAILURE_PATH_RUN"


def make_project(root: Path, pipeline: str) -> Path:
    repo = root / "project"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(pipeline, encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


class Child:
    """`pyci run --plain` started in its own session (so a Ctrl-C can reach its group, as a
    terminal's would), its environment marked so that its descendants can be found."""

    def __init__(self, repo: Path, job_tmp: Path, executor: str, *, pipe: bool = False):
        """`pipe`: stdout is a pipe to read from; else a file (`output`)."""
        self.repo = repo
        self.job_tmp = job_tmp
        self.report = repo.parent / "report.json"
        self.stderr_path = repo.parent / "stderr"
        self.stdout_path = repo.parent / "stdout"
        self.mark = uuid.uuid4().hex
        env = {**child_env(job_tmp), RUN_MARKER: self.mark}
        command = pyci_command("--executor", executor, "--json-report", str(self.report))
        with self.stderr_path.open("w") as stderr, self.stdout_path.open("w") as stdout:
            self.process = subprocess.Popen(
                command,
                cwd=repo,
                env=env,
                stdout=subprocess.PIPE if pipe else stdout,
                stderr=stderr,
                start_new_session=True,
            )
        # A gate that never opens must not hang the suite either
        self._last_resort = threading.Timer(4 * WATCHDOG_SECONDS, self.kill_if_running)
        self._last_resort.start()

    def wait_for_output(self, text: str) -> None:
        """Until stdout (a file) holds `text`; the run's own gate, under the watchdog."""
        if not wait_until(lambda: text in self.output, timeout=WATCHDOG_SECONDS):
            pytest.fail(f"no {text!r} in the output within {WATCHDOG_SECONDS:g}s:\n{self.output}")

    @property
    def output(self) -> str:
        return self.stdout_path.read_text()

    def wait(self, timeout: float = WATCHDOG_SECONDS) -> int:
        """The exit code; a child that outlives `timeout` hangs: killed, and the test fails."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"pyci run hangs: still running {timeout:g}s later\n{self.stderr}")

    def kill_if_running(self) -> None:
        self._last_resort.cancel()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def jobs(self) -> dict[str, dict]:
        return {job["name"]: job for job in json.loads(self.report.read_text())["jobs"]}

    def leftovers(self, marker: str, test_mounts: tuple[Path, ...] = ()) -> list[str]:
        """What this run left behind; `marker` is in the command line of its jobs' processes;
        `test_mounts`: mount points the test itself made."""
        pid = self.process.pid
        owned = f"{names.id_prefix()}-{pid}-"  # the child inherits the session's prefix
        wait_until(lambda: not marked_processes(RUN_MARKER, self.mark), timeout=3)
        found = [f"process {p}" for p in marked_processes(RUN_MARKER, self.mark)]
        found += processes_mentioning(marker)
        with open("/proc/mounts") as mounts:
            for line in mounts:
                mount_point = Path(line.split()[1])
                if mount_point not in test_mounts and (
                    owned in line or str(self.repo.parent) in line
                ):
                    found.append(line)
        for top in Path("/sys/fs/cgroup").iterdir():
            if top.is_dir():
                found += [str(p) for p in top.rglob(f"{owned}*")]
        run_dir = Path(os.environ.get("PYCI_RUN_DIR", "/run/pyci"))
        if run_dir.is_dir():
            found += [str(p) for p in run_dir.glob(f"{owned}*")]
        found += [str(p) for p in self.job_tmp.iterdir()]
        # the checkout kept for the next run may stay (docs/build.md); no job's build dir may
        builds = (self.job_tmp.parent / "builds").glob("*/*")
        found += [str(p) for p in builds if not p.parent.name.endswith(KEPT_SUFFIX)]
        return found


# -- the reader of the output goes away ------------------------------------------------------

TALKING = """
talk:
  script:
    - sh -c 'while :; do echo tick; sleep 0.05; done' marker-5811
later:
  stage: deploy
  script: [echo later]
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_closed_stdout_ends_the_run_quietly_with_141(executor, tmp_path, job_tmp):
    """`pyci run | head -1`: the first line read, the reader gone, the run ends."""
    repo = make_project(tmp_path, TALKING)
    child = Child(repo, job_tmp, executor, pipe=True)
    try:
        assert child.process.stdout is not None
        first = child.process.stdout.readline()
        assert first.startswith(b"[talk] "), first
        child.process.stdout.close()  # what `head -1` does once it has its line
        assert child.wait() == 141
    finally:
        child.kill_if_running()
    assert child.stderr == ""
    assert child.jobs["talk"]["status"] == "canceled"
    assert child.jobs["later"]["status"] == "canceled"
    assert child.leftovers("marker-5811") == []


# -- a job name as long and strange as GitLab allows ------------------------------------------

LONG_NAME = ("build: [linux, amd64] ü/✓ 'quoted' \"too\" " + "x" * 300)[:255]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_255_character_job_name_runs(executor, tmp_path, job_tmp):
    assert len(LONG_NAME) == 255 and len(LONG_NAME.encode()) > NAME_MAX
    pipeline = {
        LONG_NAME: {
            "stage": "build",
            "script": ["echo built > out.txt", "echo done-6912"],
            "artifacts": {"paths": ["out.txt"]},
        },
        "use": {"stage": "test", "script": ["cat out.txt"]},
    }
    repo = make_project(tmp_path, json.dumps(pipeline))  # JSON is YAML
    child = Child(repo, job_tmp, executor)
    try:
        assert child.wait() == 0, child.stderr
    finally:
        child.kill_if_running()
    assert child.jobs[LONG_NAME]["status"] == "success"
    assert child.jobs["use"]["status"] == "success"
    assert "done-6912" in Path(child.jobs[LONG_NAME]["log"]).read_text()
    assert "built" in Path(child.jobs["use"]["log"]).read_text()  # the artifact arrived
    state_names = [p.name for p in (repo / ".pyci").rglob("*")]
    assert max(len(name.encode()) for name in state_names) <= NAME_MAX
    assert child.leftovers("marker-6912") == []


# -- the log file system is full --------------------------------------------------------------

FULL_LOGS = """
one:
  stage: build
  script: [echo one-7023]
two:
  stage: build
  script: [echo two-7023]
later:
  stage: test
  script: [echo later]
"""


@pytest.fixture
def full_logs_dir(tmp_path: Path):
    """A project whose `.pyci/logs` is a small tmpfs, filled to the last byte."""
    repo = make_project(tmp_path, FULL_LOGS)
    logs = repo / ".pyci" / "logs"
    logs.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "pyci-test-full", str(logs)], check=True
    )
    try:
        filler = os.open(logs / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(filler, b"\0" * 4096)
        os.close(filler)
        yield repo
    finally:
        subprocess.run(["umount", str(logs)], check=True)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_full_log_file_system_fails_the_jobs_and_ends_the_run(executor, full_logs_dir, job_tmp):
    child = Child(full_logs_dir, job_tmp, executor)
    try:
        assert child.wait() == 1, child.stderr
    finally:
        child.kill_if_running()
    for name in ("one", "two"):
        assert child.jobs[name]["status"] == "failed"
        assert child.jobs[name]["failure_reason"] == "runner_system_failure"
        assert "No space left on device" in child.jobs[name]["message"]
    assert child.jobs["later"]["status"] == "skipped"
    # one line per job on stderr, naming the job, the error and where its traceback went
    lines = child.stderr.splitlines()
    assert sorted(line.split(":")[0:2] for line in lines) == [
        ["pyci", " job one"],
        ["pyci", " job two"],
    ], child.stderr
    for line in lines:
        assert "No space left on device (traceback in " in line
        traceback_file = Path(line.rsplit("(traceback in ", 1)[1].rstrip(")"))
        assert traceback_file.parent == job_tmp
        assert "Traceback (most recent call last)" in traceback_file.read_text()
        traceback_file.unlink()  # read: not a leftover
    assert child.leftovers("marker-7023", (full_logs_dir / ".pyci" / "logs",)) == []


# -- signals ----------------------------------------------------------------------------------

LONG_JOB = """
long:
  script:
    - echo started
    - sh -c 'sleep 30' marker-8134
  after_script:
    - echo "after_script status $CI_JOB_STATUS"
next:
  stage: deploy
  script: [echo next]
"""


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_mid_run_cancels_like_ctrl_c(executor, signum, exit_code, tmp_path, job_tmp):
    """SIGTERM (`kill`, systemd) and SIGHUP (the terminal closed) cancel as Ctrl-C does, and
    exit as the shell reports a program ended by that signal: 128 + its number."""
    repo = make_project(tmp_path, LONG_JOB)
    child = Child(repo, job_tmp, executor)
    try:
        child.wait_for_output("[long] started")
        child.process.send_signal(signum)  # to pyci alone, as `kill` or systemd do
        assert child.wait() == exit_code, child.stderr
    finally:
        child.kill_if_running()
    assert child.jobs["long"]["status"] == "canceled"
    assert child.jobs["next"]["status"] == "canceled"
    assert "[long] after_script status canceled" in child.output
    assert child.leftovers("marker-8134") == []


STUBBORN_JOB = """
stubborn:
  script:
    - trap '' TERM INT
    - echo started
    - sh -c 'sleep 30' marker-9245
  after_script:
    - trap '' TERM INT
    - echo after_script started
    - sh -c 'sleep 30' marker-9245
    - echo after_script finished
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_second_ctrl_c_stops_a_job_that_ignores_signals(executor, tmp_path, job_tmp):
    """The first Ctrl-C lets the canceled job's after_script run (up to 10 s); the second
    stops it: pyci exits 130 at once, without waiting that out."""
    repo = make_project(tmp_path, STUBBORN_JOB)
    child = Child(repo, job_tmp, executor)
    try:
        child.wait_for_output("[stubborn] started")
        os.killpg(child.process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the group
        child.wait_for_output("[stubborn] after_script started")
        os.killpg(child.process.pid, signal.SIGINT)
        # well within the 10 s the after_script of a canceled job may otherwise take
        assert child.wait(timeout=WATCHDOG_SECONDS - 2) == 130, child.stderr
    finally:
        child.kill_if_running()
    assert child.jobs["stubborn"]["status"] == "canceled"
    assert "after_script finished" not in child.output
    assert "took longer than" not in child.output
    assert "stopping now" in child.stderr
    assert child.leftovers("marker-9245") == []
