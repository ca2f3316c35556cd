"""A job attacking its PID 1: pyci's init must hold nothing of pyci's that the job can reach.

PID 1 is a fork of pyci's fork server. The threat: a job reading pyci's environment
(`/proc/1/environ`: a `DOCKER_AUTH_CONFIG` of the operator's) or the server's memory
(`/proc/1/mem`: it has received other jobs' specs and their masked variables), or writing to
pyci's own output through PID 1's descriptors (`>> /proc/1/fd/1` printed a masked variable in
clear; `> /proc/1/fd/1` truncated pyci's log). Each attack runs from inside a job as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.container.runtime import Launcher, run_container
from tests.cli import isolated_env
from tests.container.test_container_cli import job_lines, make_project

REPO_ROOT = Path(__file__).resolve().parents[2]
CANARY = f"pyci-canary-{secrets.token_hex(8)}"
SECRET = f"masked-{secrets.token_hex(8)}"

# denied: what a job may not open in its PID 1
PROBE_PID1 = (
    "for f in environ mem maps; do "
    "if (exec 3</proc/1/$f) 2>/dev/null; then echo pid1-$f:open; else echo pid1-$f:denied; fi; "
    "done; "
    "if (exec 3>>/proc/1/fd/1) 2>/dev/null; then echo pid1-fd:open; else echo pid1-fd:denied; fi"
)


def test_pid1_is_not_dumpable(launcher, make_spec):
    """Root in the job has PID 1's own capabilities: were PID 1 dumpable, the kernel would let
    it read PID 1's memory and open its descriptors."""
    spec = make_spec("sh", "-c", PROBE_PID1, seccomp=True)
    result, out = run_container(launcher, spec, timeout=20)
    assert result.exit_code == 0, out
    assert out.decode().split() == [
        "pid1-environ:denied", "pid1-mem:denied", "pid1-maps:denied", "pid1-fd:denied"
    ]  # fmt: skip


@contextlib.contextmanager
def suid_dumpable(value: str) -> Iterator[None]:
    """The host's fs.suid_dumpable for a moment (restored): what a change of identity or
    capabilities resets the dumpable flag to."""
    path = Path("/proc/sys/fs/suid_dumpable")
    before = path.read_text().strip()
    path.write_text(value)
    try:
        yield
    finally:
        path.write_text(before)


def test_pid1_stays_not_dumpable_after_it_takes_the_jobs_identity(launcher, make_spec):
    """PID 1 becomes the job's user, which resets the flag to fs.suid_dumpable; with that at 1
    (some hosts set it for core dumps), the job's user could read its own uid's PID 1."""
    spec = make_spec("sh", "-c", PROBE_PID1, user="nobody")
    with suid_dumpable("1"):
        result, out = run_container(launcher, spec, timeout=20)
    assert result.exit_code == 0, out
    assert set(out.decode().split()) == {
        "pid1-environ:denied", "pid1-mem:denied", "pid1-maps:denied", "pid1-fd:denied"
    }  # fmt: skip


def test_pid1_environment_is_not_pyci_s(make_spec, monkeypatch):
    """Read from the host (root may): PID 1's environment is the launcher's minimal one."""
    monkeypatch.setenv("DOCKER_AUTH_CONFIG", json.dumps({"auths": {CANARY: {"auth": CANARY}}}))
    own = Launcher("serve")  # started with the canary in our environment
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        container = own.launch(make_spec("sh", "-c", "read line"), in_r, out_w, out_w)
        os.close(in_r)
        os.close(out_w)
        environ = Path(f"/proc/{container.pid1}/environ").read_bytes()
        os.close(in_w)  # the command reads EOF and ends
        assert container.wait(timeout=20).exit_code == 1  # `read` at EOF
    finally:
        own.close()
        os.close(out_r)
    assert CANARY.encode() not in environ
    names = {entry.split(b"=")[0] for entry in environ.split(b"\0") if entry}
    assert names <= {b"PYTHONPATH"}


# -- through `pyci run`, as a user starts it ------------------------------------------------

ATTACK = f"""
job:
  {{image}}
  script:
    - echo before-attack
    - '{PROBE_PID1}'
    - (true > /proc/1/fd/1) 2>/dev/null && echo fd1-truncated || echo fd1-kept
    - (true > /proc/1/fd/2) 2>/dev/null && echo fd2-truncated || echo fd2-kept
    - (echo "$SECRET_TOKEN" >> /proc/1/fd/1) 2>/dev/null && echo fd1-written || echo fd1-denied
    - (echo "$SECRET_TOKEN" >> /proc/1/fd/2) 2>/dev/null && echo fd2-written || echo fd2-denied
    - for fd in /proc/1/fd/* /proc/$$/fd/*; do stat -Lc "inode %d:%i" $fd 2>/dev/null || :; done
    - (cat /proc/1/environ 2>/dev/null || true) | tr '\\0' '\\n'
    - env
    - echo after-attack
"""


@pytest.fixture
def pyci_env(tmp_path: Path) -> dict[str, str]:
    return {
        **isolated_env(tmp_path, REPO_ROOT),
        # the operator's registry credentials: the job must never see them
        "DOCKER_AUTH_CONFIG": json.dumps({"auths": {"registry.invalid": {"auth": CANARY}}}),
    }


@pytest.mark.parametrize("network", ["none", "host", "bridge"])
@pytest.mark.parametrize("image", ["busybox", "host-root"])
def test_a_job_cannot_reach_pyci_through_pid1(tmp_path, pyci_env, busybox_rootfs, network, image):
    image_line = f"image: {busybox_rootfs}" if image == "busybox" else ""
    repo = make_project(tmp_path, ATTACK.format(image=image_line))
    out_path, err_path = tmp_path / "pyci.out", tmp_path / "pyci.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        run = subprocess.run(
            [sys.executable, "-m", "runner.cli", "run", "--plain", "--network", network,
             "--masked-variable", f"SECRET_TOKEN={SECRET}"],
            cwd=repo, env=pyci_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        ours = {os.fstat(out.fileno()), os.fstat(err.fileno())}
    stdout, stderr = out_path.read_bytes(), err_path.read_bytes()
    logs = b"".join(p.read_bytes() for p in (repo / ".pyci" / "logs").glob("*.log"))
    assert run.returncode == 0, (stdout + stderr).decode()
    lines = job_lines(stdout.decode(), "job")
    assert {"pid1-environ:denied", "pid1-mem:denied", "pid1-maps:denied"} <= set(lines)
    assert {"pid1-fd:denied", "fd1-denied", "fd2-denied", "fd1-kept", "fd2-kept"} <= set(lines)
    assert "after-attack" in lines
    # no descriptor the job can see is one of pyci's own output files
    seen = {line.split()[1] for line in lines if line.startswith("inode ")}
    assert seen, lines  # the job's own descriptors at least
    assert not seen & {f"{st.st_dev}:{st.st_ino}" for st in ours}
    # pyci's output was neither written to behind its back nor truncated
    assert b"\0" not in stdout and b"\0" not in stderr
    assert stdout.index(b"before-attack") < stdout.index(b"after-attack")
    for text in (stdout, stderr, logs):
        assert SECRET.encode() not in text
        assert CANARY.encode() not in text
