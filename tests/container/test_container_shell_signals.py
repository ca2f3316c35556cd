"""`pyci shell` ended by a signal (SIGTERM, or SIGHUP when its terminal goes away) cleans up
like a normal exit: the container is killed and the job's overlay of the sources, cgroups and
dirs go (the conftest's leftover check asserts that after each test); with the shell executor,
nothing the shell started is left running."""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path

import pytest

from executors.container.names import sources_mount
from tests.container.test_container_cli import (  # noqa: F401 - fixtures used by name
    FAILING,
    SHELL_PIPELINE,
    busybox_ref,
    env,
    make_project,
    pyci_on_pty,
)


def read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def processes_working_in(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = (entry / "cwd").readlink()
            except OSError:  # gone meanwhile, or a kernel thread
                continue
            if cwd.is_relative_to(directory):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("executor", ["container", "shell"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signalled_pyci_shell_leaves_nothing_behind(tmp_path, env, busybox_ref, signum, executor):  # noqa: F811
    repo = make_project(tmp_path, SHELL_PIPELINE.format(image=busybox_ref))
    builds = Path(env["PYCI_BUILDS_DIR"])
    args = ["shell", "--executor", executor, "job"]
    with pyci_on_pty(args, repo, env) as (process, primary):
        seen = read_until(primary, b"# ", 60)  # root's prompt, in the container or on the host
        assert b"# " in seen, seen
        os.write(primary, b"echo in-the-shell; sleep 100\n")
        seen = read_until(primary, b"in-the-shell\r\n", 30)
        assert b"in-the-shell\r\n" in seen, seen
        if executor == "container":
            mounts = Path("/proc/mounts").read_text().splitlines()
            ours = [m for m in mounts if m.startswith(f"{sources_mount()} ") and str(tmp_path) in m]
            assert ours  # the job's view of the repository exists while the shell runs
        else:
            assert processes_working_in(builds)  # the shell and its `sleep`, in the job's copy
        process.send_signal(signum)
        code = process.wait(timeout=30)
        assert code == 128 + signum
    assert processes_working_in(builds) == []
    assert not list(Path(env["PYCI_RUN_DIR"]).glob("containers/*"))
    assert not list(Path(env["PYCI_BUILDS_DIR"]).glob("*/job-*"))


def test_a_signalled_run_closes_the_shell_on_failure(tmp_path, env, busybox_ref):  # noqa: F811
    """SIGTERM while `--shell-on-failure` has a shell open: the run is canceled, and the
    shell with it (before, pyci waited for the user to leave the shell)."""
    repo = make_project(tmp_path, FAILING.format(image=busybox_ref))
    with pyci_on_pty(["run", "--shell-on-failure"], repo, env) as (process, primary):
        seen = read_until(primary, b"exit to go on", 60)
        assert b"exit to go on" in seen, seen
        prompt = read_until(primary, b"# ", 30)  # the shell in the failed job's container
        assert b"# " in prompt, prompt
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert code == 128 + signal.SIGTERM
    assert not list(Path(env["PYCI_RUN_DIR"]).glob("containers/*"))
