"""After `kill -9` of pyci, nothing keeps running and the next run removes what is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from executors.container import cgroups
from executors.container.recovery import recover

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from executors.base import BuildDirs, StageCommand
    from executors.container.executor import ContainerExecutor, ContainerSettings
    from runner.jobspec import ImageSpec, JobSpec, ServiceSpec, Variable

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


def _pyci_cgroups() -> set[Path]:
    return {p for p in cgroups.open_driver().stale() if p.name.startswith(f"pyci-{CHILD_PID[0]}-")}


CHILD_PID = [0]


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
    CHILD_PID[0] = child.pid
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        seen = b""
        while b"READY" not in seen and time.monotonic() < deadline:
            seen += child.stdout.readline()
        assert b"READY" in seen, seen
        owned = _pyci_cgroups()
        members = {pid for d in owned for pid in cgroups.read_procs(d)}
        assert len(owned) >= 2 and len(members) >= 4  # job and service: inits, shells, sleeps
        leases = list((state_dir / "ipam").iterdir())
        assert len(leases) == 2
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

    # every container process dies with pyci: launcher EOF -> every PID 1 by PDEATHSIG
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in members) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in members if Path(f"/proc/{pid}").exists()] == []

    # what stays on disk is found and removed by the next run
    report = recover(state_dir)
    assert len(report.scratch) == 2  # the job's and the service's container dirs
    assert set(report.cgroups) == owned
    assert sorted(report.leases) == sorted(p.name for p in leases)
    assert list((state_dir / "containers").iterdir()) == []
    assert _pyci_cgroups() == set()
    assert recover(state_dir).empty  # and a second pass finds nothing
