"""The runtime's side of a container's start: PID 1 and the launcher write to one status
socket, so a quick command's exit may arrive before the launcher's note of PID 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess

from executors.container.runtime import Launcher, RunningContainer
from executors.container.spec import ContainerSpec, Rootfs


def test_an_exit_reported_before_the_pid1_note_is_kept():
    spec = ContainerSpec(
        id="pyci-test-race", command=("true",), rootfs=Rootfs(("/l",), "/u", "/w", "/m")
    )
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid1 = subprocess.Popen(["true"])  # stands for PID 1: a real process, with a pidfd
    pidfd = os.pidfd_open(pid1.pid)
    pid1.wait()
    with theirs:
        theirs.send(json.dumps({"exit": 0}).encode())  # PID 1 first, as under load
        socket.send_fds(theirs, [json.dumps({"pid1": pid1.pid}).encode()], [pidfd])
    os.close(pidfd)
    started = Launcher._await_start(spec, ours)
    assert started[0] == pid1.pid and started[2] == 0
    container = RunningContainer(spec, ours, started[0], started[1], exit_code=started[2])
    assert container.wait(timeout=10).exit_code == 0
