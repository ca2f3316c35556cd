"""The single-threaded process that turns a `ContainerSpec` into a running container.

pyci's scheduler is threaded, and `fork()` in a threaded process may copy a lock some other
thread holds. So containers are started from here: a fresh Python process that never starts a
thread. It runs either as a fork server (`--serve FD`: one long-lived helper that forks per
container, about 3 ms per container) or once (`--once FD`: one container, then exit; costs a
Python start-up, ~25 ms). The runtime talks to it over a SOCK_SEQPACKET socket: a request is one
JSON message carrying the spec, with four file descriptors attached (status socket, stdin,
stdout, stderr).

Per container, three processes:
- the *keeper* (forked from the server): joins the cgroups, unshares the namespaces, wires the
  network, forks PID 1, reports its pid and waits for it;
- *PID 1* (first process of the new pid namespace): builds the root file system, forks the
  command, forwards signals, reaps orphans, reports the command's exit code and exits — which
  makes the kernel kill everything left in the container;
- the *command*: drops to the user, capabilities, no_new_privs and seccomp, then execs.

Status messages on the status socket (JSON, one per datagram): {"pid1": N} (host pid),
{"error": "..."} (setup failed: an environment error), {"exit": code} (negative: signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import traceback
from typing import NoReturn

from executors.container import capabilities, network, rootfs, seccomp, syscalls, users
from executors.container.spec import ContainerSpec, spec_from_dict

MAX_MESSAGE = 1 << 20
ACK = b"go"


def _send(status: socket.socket, **message: object) -> None:
    with contextlib.suppress(OSError):  # the runtime is gone; the keeper notices on its read
        status.send(json.dumps(message).encode())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError | LookupError | ValueError):
        return str(exc)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _namespace_flags(spec: ContainerSpec) -> int:
    flags = (
        syscalls.CLONE_NEWNS
        | syscalls.CLONE_NEWUTS
        | syscalls.CLONE_NEWIPC
        | syscalls.CLONE_NEWPID
        | syscalls.CLONE_NEWCGROUP
    )
    if spec.network.mode != "host":
        flags |= syscalls.CLONE_NEWNET
    return flags


def run_keeper(spec: ContainerSpec, status: socket.socket, stdio: list[int]) -> NoReturn:
    """The keeper: everything up to PID 1. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            raise RuntimeError("the launcher exited")
        for cgroup_dir in spec.cgroup_dirs:
            with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
                f.write("0")
        host_side = network.before_unshare(spec.network)
        syscalls.unshare(_namespace_flags(spec))
        network.after_unshare(spec.network, host_side)
        pid1 = os.fork()
        if pid1 == 0:
            run_pid1(spec, status, stdio)
        for fd in stdio:
            os.close(fd)
        _send(status, pid1=pid1)
        # hold PID 1 unreaped (so its pid cannot be reused) until the runtime has a pidfd on it
        if status.recv(16) != ACK:
            os.kill(pid1, signal.SIGKILL)
        os.waitpid(pid1, 0)
        code = 0
    except BaseException as exc:
        _send(status, error=f"container {spec.id}: {_describe(exc)}")
    os._exit(code)


def run_pid1(spec: ContainerSpec, status: socket.socket, stdio: list[int]) -> NoReturn:
    """PID 1 of the container. Never returns."""
    try:
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        syscalls.sethostname(spec.hostname)
        rootfs.setup_rootfs(spec)
        user = users.resolve_user(spec.user)
        if not os.path.isdir(spec.cwd):
            os.makedirs(spec.cwd, mode=0o755)
            os.chown(spec.cwd, user.uid, user.gid)
    except BaseException as exc:
        _send(status, error=f"container {spec.id}: {_describe(exc)}")
        os._exit(1)
    command = os.fork()
    if command == 0:
        run_command(spec, status, stdio, user)
    for fd in stdio:
        os.close(fd)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(command, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == command:
            _send(status, exit=os.waitstatus_to_exitcode(wait_status))
            os._exit(0)  # the kernel now kills every other process of the container


def run_command(
    spec: ContainerSpec, status: socket.socket, stdio: list[int], user: users.ResolvedUser
) -> NoReturn:
    """The job's process, from PID 1's fork to exec. Never returns."""
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in stdio:
            if fd > 2:
                os.close(fd)
        if os.isatty(0):
            import fcntl
            import termios

            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        os.chdir(spec.cwd)
        if spec.seccomp and not spec.no_new_privs:
            # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load before dropping it
            seccomp.load_default_profile()
        capabilities.drop_bounding(spec.capabilities)
        os.setgroups(list(user.groups))
        os.setgid(user.gid)
        os.setuid(user.uid)
        if user.uid == 0:
            capabilities.apply_process_sets(spec.capabilities)
        if spec.no_new_privs:
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        if spec.seccomp and spec.no_new_privs:
            seccomp.load_default_profile()
        env = dict(spec.env)
        env.setdefault("HOME", user.home)
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        os.execvpe(spec.command[0], list(spec.command), env)
    except BaseException as exc:
        _send(status, error=f"container {spec.id}: exec {spec.command[0]!r}: {_describe(exc)}")
    os._exit(127)


def _receive(control: socket.socket) -> tuple[ContainerSpec, socket.socket, list[int]] | None:
    message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 4)
    if not message:
        return None
    for fd in fds:
        os.set_inheritable(fd, False)
    status = socket.socket(fileno=fds[0])
    return spec_from_dict(json.loads(message)), status, list(fds[1:])


def serve(control_fd: int, once: bool = False) -> None:
    """Fork one keeper per request until the runtime closes the control socket."""
    os.set_inheritable(control_fd, False)
    control = socket.socket(fileno=control_fd)
    # keepers are reaped by the kernel; the runtime learns their fate on the status socket
    if not once:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is pyci's to handle, not ours
    # no PDEATHSIG here: it fires when the *thread* that started us exits, and pyci is threaded.
    # When pyci dies the control socket reaches EOF and we exit, which kills every keeper.
    network.preload()
    with contextlib.suppress(OSError):  # no libseccomp: a container asking for it will fail
        seccomp.preload()
    while True:
        request = _receive(control)
        if request is None:
            return
        spec, status, stdio = request
        keeper = os.fork()
        if keeper == 0:
            control.close()
            run_keeper(spec, status, stdio)
        status.close()
        for fd in stdio:
            os.close(fd)
        if once:
            os.waitpid(keeper, 0)  # the keeper dies with us (PDEATHSIG): outlive it
            return


def main(argv: list[str]) -> int:
    mode, fd = argv[0], int(argv[1])
    serve(fd, once=mode == "--once")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
