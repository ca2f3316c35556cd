"""Timeouts, cancel and crashes leave no process and no directory behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from executors.factory import ExecutorOptions
from executors.shell import pid_namespaces_available
from runner.build import snapshot as snapshots
from runner.build import workspace
from runner.core import background

from .conftest import Builder
from .procs import hung_since, marked_processes, new_marker, wait_for

ROOT = Path(__file__).resolve().parents[2]

ISOLATION = [
    pytest.param(True, id="pid-namespace"),
    pytest.param(False, id="session-kill"),
]


def options(isolate: bool) -> ExecutorOptions:
    if isolate and not pid_namespaces_available():
        pytest.skip("PID namespaces are not available to this user")
    return ExecutorOptions(isolate_pids=isolate)


def sources_mounts(builder: Builder) -> list[str]:
    """Mounts (a job's overlay of the sources) under the builds root."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if f" {builder.builds_root}/" in line]


def no_build_dirs(builder: Builder) -> bool:
    """Once the job's removal is done: only the run's shared checkout may remain, and no
    mount; after the end of the run (release_all, at pyci's exit) only the project's
    checkout kept for the next run."""
    root = builder.builds_root
    background.finish_removals()
    left = [p for p in root.glob("*/*") if not p.name.startswith(snapshots.SNAPSHOT_PREFIX)]
    left = [p for p in left if not p.parent.name.endswith(snapshots.KEPT_SUFFIX)]
    if left or sources_mounts(builder):
        return False
    snapshots.release_all()
    return not root.exists() or all(p.name.endswith(snapshots.KEPT_SUFFIX) for p in root.iterdir())


@pytest.mark.parametrize("isolate", ISOLATION)
def test_timeout_kills_the_whole_process_tree(builder: Builder, make_job, isolate: bool):
    marker = new_marker()
    job = make_job(
        "job",
        ("sleep 300 &", "(sleep 301 &) ; sh -c 'sleep 302' &", "sleep 303"),
        variables=(marker,),
        timeout=1.0,
    )
    started = time.monotonic()
    outcome = builder.run(job, options=options(isolate))
    assert not hung_since(started)
    assert (outcome.status, outcome.failure_reason) == ("failed", "job_execution_timeout")
    assert outcome.exit_code is None
    assert marked_processes(marker) == []
    log = builder.recorder.log()
    assert "Job failed: execution took longer than 1s\x1b" in log
    assert "unshare" not in log and "sigprocmask" not in log  # no noise from the killing
    assert no_build_dirs(builder)


@pytest.mark.parametrize("isolate", ISOLATION)
def test_background_processes_die_with_a_finished_script(builder: Builder, make_job, isolate):
    marker = new_marker()
    job = make_job("job", ("sleep 300 &", "echo done"), variables=(marker,))
    started = time.monotonic()
    assert builder.run(job, options=options(isolate)).status == "success"
    assert not hung_since(started)
    assert marked_processes(marker) == []


def test_a_daemon_cannot_escape_the_pid_namespace(builder: Builder, make_job):
    marker = new_marker()
    job = make_job("job", ("setsid sleep 300 > /dev/null 2>&1 < /dev/null &",), variables=(marker,))
    assert builder.run(job, options=options(True)).status == "success"
    assert marked_processes(marker) == []


@pytest.mark.parametrize("isolate", ISOLATION)
def test_cancel_stops_the_job_and_runs_after_script(builder: Builder, make_job, isolate: bool):
    marker = new_marker()
    job = make_job(
        "job",
        ("sleep 300 & sleep 301",),
        after_script=('echo "after: $CI_JOB_STATUS"',),
        variables=(marker,),
    )
    cancel = threading.Event()
    timer = threading.Thread(
        target=lambda: wait_for(lambda: marked_processes(marker), 10) and cancel.set()
    )
    timer.start()
    started = time.monotonic()
    outcome = builder.run(job, cancel=cancel, options=options(isolate))
    timer.join()
    assert not hung_since(started)
    assert (outcome.status, outcome.failure_reason) == ("canceled", "canceled")
    assert "after: canceled\n" in builder.recorder.log()
    assert marked_processes(marker) == []
    assert no_build_dirs(builder)


def test_cancel_before_the_script_skips_it(builder: Builder, make_job):
    cancel = threading.Event()
    cancel.set()
    outcome = builder.run(make_job("job", ("echo never-printed",)), cancel=cancel)
    assert outcome.status == "canceled"
    assert "never-printed\n" not in builder.recorder.log()


CRASHING_RUNNER = """
import sys, threading
sys.path.insert(0, {root!r})
from pathlib import Path
from executors.factory import ExecutorOptions, create_executor
from runner.build.build import run_build
from runner.build.context import BuildContext
from runner.core.jobspec import JobSpec, Variable

class Quiet:
    def handle(self, event):
        pass

job = JobSpec("job", "test", 0, script=("sleep 300 & sleep 301",),
              variables=(Variable({key!r}, {value!r}),))
ctx = BuildContext(Path({project!r}), Path({project!r}) / ".pyci",
                   builds_root=Path({builds!r}))
run_build(job, create_executor("shell", ExecutorOptions(isolate_pids=True)), ctx, Quiet(),
          threading.Event())
"""


def test_a_crashed_pyci_leaves_no_process_and_the_next_build_sweeps_its_dirs(
    builder: Builder, make_job
):
    options(True)
    marker = new_marker()
    code = CRASHING_RUNNER.format(
        root=str(ROOT),
        key=marker.key,
        value=marker.value,
        project=str(builder.project),
        builds=str(builder.builds_root),
    )
    runner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])
    try:
        assert wait_for(lambda: len(marked_processes(marker)) >= 2, 20)
    finally:
        runner.send_signal(signal.SIGKILL)  # pyci dies without any clean-up
        runner.wait()
    assert wait_for(lambda: marked_processes(marker) == [], 5)
    project_builds = workspace.project_builds_dir(builder.builds_root, builder.project)
    assert any(project_builds.iterdir())  # the crashed run could not remove its directory
    if os.geteuid() == 0:
        assert sources_mounts(builder)  # nor unmount the job's view of the sources
    assert builder.run(make_job("next", ("true",))).status == "success"
    assert no_build_dirs(builder)


def test_workspace_lock_protects_a_live_build(tmp_path: Path):
    root = tmp_path / "builds"
    live = workspace.create(root, tmp_path, "live")
    stale = workspace.project_builds_dir(root, tmp_path) / "stale-dir"
    stale.mkdir()
    assert workspace.sweep_stale(stale.parent) == [stale]
    assert live.job_dir.is_dir()
    live.remove()
    live.remove()
    assert not root.joinpath(stale.parent.name).exists()
    assert os.listdir(root) == []
