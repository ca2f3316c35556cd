"""After `kill -9` of pyci, nothing keeps running and the next run removes what is left."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from executors.container import cgroupfs, cgroups, network
from executors.container.names import id_prefix, sources_mount
from executors.container.recovery import recover, recover_in_background, recover_once

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from executors.base import BuildDirs, StageCommand
    from executors.container.executor import ContainerExecutor, ContainerSettings
    from runner.core.jobspec import ImageSpec, JobSpec, ServiceSpec, Variable

    state, image, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    class Log:
        def write(self, text):
            sys.stdout.write(text)
            sys.stdout.flush()
    job = JobSpec(
        name="doomed", stage="test", stage_index=0, script=("x",), image=ImageSpec(image),
        services=(ServiceSpec(image, ("side",), command=("sleep", "300")),),
        variables=(Variable("PYCI_MEMORY_LIMIT", "64m"),),
    )
    executor = ContainerExecutor(ContainerSettings(state_dir=state, network="bridge"))
    executor.prepare(job, BuildDirs(work / "project", work / "scratch"), Log())
    executor.run(StageCommand("step_script", "echo READY; sleep 300", 600), Log(),
                 threading.Event())
    """
)


def _leases_of(pid: int) -> set[str]:
    """The bridge addresses `pid` holds (leases of ended processes are dropped on reading)."""
    return {
        address for address, holder in network.default_pool().holders().items() if holder == pid
    }


def _owned_cgroups(pid: int) -> set[Path]:
    return {p for p in cgroups.open_driver().stale() if p.name.startswith(f"{id_prefix()}-{pid}-")}


def wait_until(condition, timeout: float, pause: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds passed; its last answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return bool(condition())
        time.sleep(pause)
    return True


def read_until(stream, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            chunk = os.read(stream.fileno(), 65536)  # unbuffered: select sees all there is
            if not chunk:
                break
            seen += chunk
    return seen


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def test_kill_9_leaves_no_process_and_recovery_removes_the_rest(
    state_dir, busybox_rootfs, tmp_path
):
    (tmp_path / "project").mkdir()
    (tmp_path / "scratch").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state_dir), str(busybox_rootfs), str(tmp_path)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        seen = read_until(child.stdout, b"READY", 30)
        assert b"READY" in seen, seen
        owned = _owned_cgroups(child.pid)
        members = {pid for d in owned for pid in cgroupfs.read_procs(d)}
        assert len(owned) >= 2 and len(members) >= 4  # job and service: inits, shells, sleeps
        leases = _leases_of(child.pid)
        assert len(leases) == 2  # the job's address and the service's
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

    # every container process dies with pyci: launcher EOF -> every PID 1 by PDEATHSIG
    assert wait_until(lambda: not alive(members), 10), alive(members)

    # what stays on disk is found and removed by the next run
    report = recover(state_dir)
    assert report.failed == []
    assert len(report.scratch) == 2  # the job's and the service's container dirs
    # leases are machine-wide and any pyci process frees a dead one when it leases: this
    # report may hold a subset; what counts is that both addresses are free again
    assert set(report.leases) <= leases
    assert _leases_of(child.pid) == set()
    assert list((state_dir / "containers").iterdir()) == []
    # The cgroups sit below a cgroup other pyci processes on this machine may share (a
    # concurrent test run, another helper's pyci): any of them may recover these first, so
    # this run's report holds a subset of them; what counts is that none is left.
    assert set(report.cgroups) <= owned
    assert wait_until(lambda: not any(d.exists() for d in owned), 10), owned
    assert _owned_cgroups(child.pid) == set()
    assert recover(state_dir).scratch == []  # and a second pass finds nothing of ours


PIPELINE = """
job:
  image: {image}
  services:
    - name: {image}
      alias: side
      command: ["sleep", "300"]
  variables:
    PYCI_MEMORY_LIMIT: 64m
  script:
    - echo READY
    - sleep 300
"""


def _pyci_mounts() -> set[str]:
    return {line for line in Path("/proc/mounts").read_text().splitlines() if "pyci" in line}


def test_the_next_pyci_run_removes_what_a_killed_one_left(tmp_path, busybox_rootfs):
    """`kill -9` of `pyci run` mid-job (with a service, a memory cgroup, the bridge and the
    sources' overlay), then `pyci run` of another project: nothing of the first remains."""
    from tests.cli import isolated_env
    from tests.container.conftest import leftovers, snapshot
    from tests.container.test_container_cli import make_project, pyci

    before = snapshot()
    env = isolated_env(tmp_path, REPO)
    doomed = make_project(tmp_path / "doomed", PIPELINE.format(image=busybox_rootfs))
    command = [sys.executable, "-m", "runner.cli", "run", "--executor", "container", "--plain"]
    process = subprocess.Popen(
        [*command, "--network", "bridge"],
        cwd=doomed,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        seen = read_until(process.stdout, b"[job] READY", 60)
        assert b"[job] READY" in seen, seen
        processes = descendants(process.pid)
        overlays = [m for m in _pyci_mounts() if m.startswith(f"{sources_mount()} ")]
        assert any(str(tmp_path / "builds") in m for m in overlays), overlays
        assert _owned_cgroups(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    assert wait_until(lambda: not alive(processes), 10), alive(processes)

    other = make_project(tmp_path / "other", "job:\n  script:\n    - echo fine\n")
    run = pyci(other, env, "run", "--executor", "container", "--plain", "--network", "bridge")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Removed leftovers of an interrupted run" in run.stdout, run.stdout
    assert "could not remove" not in run.stdout

    # the kernel deletes a dead namespace's veth asynchronously: wait for it, bounded
    assert leftovers(before, timeout=15) == {}
    assert not any(str(tmp_path) in m for m in _pyci_mounts())
    assert list((tmp_path / "run" / "containers").iterdir()) == []
    assert _leases_of(process.pid) == set()
    # the killed build's job dir went with its overlay; its snapshot of the sources is swept
    # by the next build of that project (runner/build/workspace.py)
    assert not list((tmp_path / "builds").glob("*/job-*"))


def test_a_source_overlay_is_removed_only_when_no_build_holds_its_job_dir(tmp_path):
    from executors.container.recovery import recover_source_overlays, source_overlays
    from executors.linux import syscalls

    project_builds = tmp_path / "builds" / "demo-1234"
    job_dir = project_builds / "job-abc"
    lower, upper, work, target = (job_dir / name for name in ("lower", "upper", "work", "demo"))
    for directory in (lower, upper, work, target):
        directory.mkdir(parents=True)
    (lower / "file").write_text("from the snapshot\n")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    syscalls.mount(sources_mount(), str(target), "overlay", 0, options)
    try:
        lock = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a live build (this test) holds its job dir
            assert target in source_overlays()
            assert target not in recover_source_overlays().mounts
            assert (target / "file").read_text() == "from the snapshot\n"  # still mounted
        finally:
            os.close(lock)  # the build dies: its flock goes with it
        report = recover_source_overlays()
        assert target in report.mounts and report.failed == []
        assert target not in source_overlays()
        assert not job_dir.exists() and not project_builds.exists()
    finally:
        if target in source_overlays():  # a failed assertion must not leave the mount
            syscalls.umount2(str(target), syscalls.MNT_DETACH)


def test_recovery_started_early_reports_to_the_first_job_only(state_dir):
    dead = _dead_pid()
    leftover = state_dir / "containers" / f"pyci-{dead}-abcdef"
    (leftover / "upper").mkdir(parents=True)
    (leftover / "owner").write_text(str(dead))
    recover_in_background(state_dir)
    first = recover_once(state_dir)  # waits for the thread's recovery
    assert first is not None and first.scratch == [leftover]
    assert not leftover.exists()
    assert recover_once(state_dir) is None
    for thread in threading.enumerate():  # it ends with its work
        if thread.name == "pyci-recovery":
            thread.join(5)
            assert not thread.is_alive()


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
