"""The single-threaded process that turns a `ContainerSpec` into a running container.

pyci's scheduler is threaded, and `fork()` in a threaded process may copy a lock some other
thread holds. So containers are started from here: a fresh Python process that never starts a
thread. It runs either as a fork server (`--serve FD`: one long-lived helper for all
containers) or once (`--once FD`: one container, then exit; it costs a Python start-up). The
runtime talks to it over a SOCK_SEQPACKET socket: a request is one JSON message carrying the
spec, with four file descriptors attached (status socket, stdin, stdout, stderr).

Per container, two processes, and only one fork of this Python process (forks are the main
cost here: they copy page tables in proportion to memory):
- *PID 1*: cloned straight into its cgroup v2 directory and new mount, uts, ipc and pid
  namespaces. First it makes itself non-dumpable and sheds what it inherited from the server
  (its stdio made /dev/null, every descriptor closed but those of its request), then enters
  the network namespace the server made ahead of time (unless `host`). It joins the v1
  cgroups, unshares a cgroup namespace, asks the runtime to plug in its veth (bridge) and
  builds the root file system meanwhile, sets up the network inside, drops to the container's
  user, capabilities, no_new_privs and seccomp, then `posix_spawn`s the command (vfork +
  exec: cheap whatever our size). It forwards signals, reaps orphans, reports the command's
  exit and exits — which makes the kernel kill everything left in the container;
- the *command*.

Status messages on the status socket (JSON, one per datagram): {"pid1": N} with a pidfd
attached (from the server), {"netns": true} (PID 1 waits for b"net-ok" back),
{"error": "..."} (setup failed: an environment error), {"exit": code} (negative: signal).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import sys
import termios
from dataclasses import dataclass
from typing import NoReturn

from executors.container import capabilities, interfaces, rootfs, seccomp, users
from executors.container.spec import MAX_MESSAGE, NET_READY, ContainerSpec, spec_from_dict
from executors.linux import syscalls

# Everything PID 1 uses is imported above: after pivot_root the host's Python library is gone.

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_DEFAULTED = tuple(
    s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP) and s < 32
)
# What differs from the default in PID 1 when it is forked: Python ignores SIGPIPE and SIGXFSZ
# and handles SIGINT; the server ignores SIGINT and SIGCHLD (which would make waitpid fail).
_CHANGED_IN_PID1 = (signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ)
# No descriptor is opened at or above RLIMIT_NOFILE, which the server never lowers. (Not 2**31:
# without close_range(2), a kernel before 5.9, os.closerange closes one number at a time.)
_FD_LIMIT = os.sysconf("SC_OPEN_MAX")


def _send(status: socket.socket, **message: object) -> None:
    with contextlib.suppress(OSError):  # the runtime is gone; PDEATHSIG follows soon
        status.send(json.dumps(message).encode())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError | LookupError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _namespace_flags(spec: ContainerSpec) -> int:
    flags = syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
    flags |= syscalls.CLONE_NEWPID
    if spec.network.mode != "host":
        flags |= syscalls.CLONE_NEWNET
    return flags


def run_pid1(
    spec: ContainerSpec, status: socket.socket, stdio: list[int], clone: _Clone, devnull: int
) -> NoReturn:
    """PID 1 of the container, from clone to its exit. Never returns."""
    try:
        # Before anything else, as runc's init does: not dumpable, so the job (root without
        # CAP_SYS_PTRACE, or PID 1's own user) can neither read /proc/1/mem or /proc/1/environ
        # (this process has held other containers' specs) nor open /proc/1/fd/*.
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        _shed_inherited_fds(devnull, keep=(status.fileno(), *stdio, clone.netns))
        for signum in _CHANGED_IN_PID1:  # the command gets all of _DEFAULTED from spawn
            signal.signal(signum, signal.SIG_DFL)
        if clone.netns >= 0:
            syscalls.setns(clone.netns, syscalls.CLONE_NEWNET)
            os.close(clone.netns)
        for cgroup_dir in spec.cgroup_dirs:
            if cgroup_dir != clone.born_in:
                with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
                    f.write("0")
        syscalls.unshare(syscalls.CLONE_NEWCGROUP)  # its root: the cgroup just joined
        if spec.network.mode == "bridge":
            _send(status, netns=True)  # the runtime adds eth0 while we build the root
        syscalls.sethostname(spec.hostname)
        rootfs.setup_rootfs(spec)
        if spec.network.mode == "bridge" and status.recv(16) != NET_READY:
            raise OSError("the runtime could not attach the container's network")
        interfaces.configure_inside(spec.network)
        user = users.resolve_user(spec.user)
        if not os.path.isdir(spec.cwd):
            os.makedirs(spec.cwd, mode=0o755)
            os.chown(spec.cwd, user.uid, user.gid)
        os.chdir(spec.cwd)
        env = dict(spec.env)
        env.setdefault("HOME", user.home)
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        tty = os.isatty(stdio[0])
        _drop_privileges(spec, user)
    except BaseException as exc:
        _send(status, error=f"container {spec.id}: {_describe(exc)}")
        os._exit(1)
    try:
        program = _find_program(spec.command[0], env["PATH"])
        command = _start_command(program, spec, env, stdio, tty, status)
    except BaseException as exc:
        _send(status, error=f"container {spec.id}: exec {spec.command[0]!r}: {_describe(exc)}")
        os._exit(127)
    for fd in stdio:
        os.close(fd)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(command, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == command:
            _send(status, exit=os.waitstatus_to_exitcode(wait_status))
            os._exit(0)  # the kernel now kills every other process of the container


def _shed_inherited_fds(devnull: int, keep: tuple[int, ...]) -> None:
    """Make 0, 1 and 2 /dev/null and close every other descriptor but `keep`.

    PID 1 is a fork of the server, whose stderr is pyci's: a job that wrote to /proc/1/fd/2
    would write into pyci's output (or truncate its log). Whatever else the server held is
    closed too (os.closerange is close_range(2) here), so nothing of the server's reaches the
    command, which gets only its three stdio descriptors: all others are close-on-exec."""
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    low = 3
    for fd in sorted(fd for fd in set(keep) if fd >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _FD_LIMIT)


def _find_program(name: str, path: str) -> str:
    """`name` looked up in the container's PATH, as execvp would (shutil.which, whose import
    costs the launcher ~5 ms at every start, is no better here)."""
    if "/" in name:
        return name
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"not found in PATH {path}")


def _drop_privileges(spec: ContainerSpec, user: users.ResolvedUser) -> None:
    """PID 1 takes the command's identity: the command inherits it through posix_spawn, and
    PID 1 itself needs no privilege to wait, forward signals and report."""
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
        if spec.seccomp:
            seccomp.load_default_profile()
    # the kernel resets the flag to the fs.suid_dumpable sysctl (which some hosts set to 1 for
    # core dumps) when the uid or gid changes, as runc's init knows: clear it again, for good
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)


def _start_command(
    program: str,
    spec: ContainerSpec,
    env: dict[str, str],
    stdio: list[int],
    tty: bool,
    status: socket.socket,
) -> int:
    if not tty:
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
        return os.posix_spawn(
            program, list(spec.command), env, file_actions=actions, setsid=True,
            setsigdef=_DEFAULTED,
        )  # fmt: skip
    # a terminal must become the controlling one after setsid: posix_spawn cannot do that
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            os.execve(program, list(spec.command), env)
        except BaseException as exc:
            _send(status, error=f"container {spec.id}: exec {spec.command[0]!r}: {exc}")
        finally:
            os._exit(127)
    return pid


@dataclass(frozen=True)
class _Clone:
    pid: int  # 0 in the child
    pidfd: int
    born_in: str | None  # the cgroup v2 directory PID 1 was cloned into
    netns: int  # a network namespace PID 1 must enter (-1: none, or its own from clone)


class _Cloner:
    """Clones PID 1 as cheaply as the kernel allows.

    - Straight into its cgroup v2 directory (clone3's CLONE_INTO_CGROUP): joining through
      `cgroup.procs` takes the kernel's global cgroup lock for writing, which waits for an RCU
      grace period (5-15 ms per container here).
    - Into a network namespace made ahead of time, between two requests: making one costs
      ~1 ms, as much as the rest of the clone, and can be done while the previous container
      runs instead of while the next one is awaited.
    """

    def __init__(self) -> None:
        self.into_cgroup = True  # until the kernel says it has no CLONE_INTO_CGROUP
        self._home_netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._spare_netns = -1

    def prepare_netns(self) -> None:
        """Make the next container's network namespace now, if none is waiting."""
        if self._spare_netns < 0:
            with contextlib.suppress(OSError):  # then clone makes one, as before
                self._spare_netns = self._new_netns()

    def _new_netns(self) -> int:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        try:
            return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            syscalls.setns(self._home_netns, syscalls.CLONE_NEWNET)

    def clone(self, spec: ContainerSpec) -> _Clone:
        flags = _namespace_flags(spec)
        netns = -1
        if flags & syscalls.CLONE_NEWNET and self._spare_netns >= 0:
            netns, self._spare_netns = self._spare_netns, -1
            flags &= ~syscalls.CLONE_NEWNET
        try:
            pid, pidfd, born_in = self._clone(flags, spec.cgroup_v2_dir)
        except BaseException:
            if netns >= 0:
                os.close(netns)
            raise
        if pid == 0:
            os.close(self._home_netns)  # no handle on the host's network inside
            return _Clone(0, -1, born_in, netns)
        if netns >= 0:
            os.close(netns)  # PID 1 has its own copy
        return _Clone(pid, pidfd, born_in, -1)

    def _clone(self, flags: int, cgroup_dir: str | None) -> tuple[int, int, str | None]:
        if not (self.into_cgroup and cgroup_dir):
            return (*syscalls.clone_process(flags), None)
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            pid, pidfd = syscalls.clone_process(flags, cgroup_fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.E2BIG):
                raise
            self.into_cgroup = False  # an older kernel: PID 1 joins by writing, from now on
            return (*syscalls.clone_process(flags), None)
        finally:
            os.close(cgroup_fd)  # in the child too: no host cgroupfs handle inside
        return pid, pidfd, cgroup_dir


def _receive(control: socket.socket) -> tuple[ContainerSpec, socket.socket, list[int]] | None:
    message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 4)
    if not message:
        return None
    for fd in fds:
        os.set_inheritable(fd, False)
    status = socket.socket(fileno=fds[0])
    return spec_from_dict(json.loads(message)), status, list(fds[1:])


def serve(control_fd: int, once: bool = False) -> None:
    """Clone one PID 1 per request until the runtime closes the control socket."""
    os.set_inheritable(control_fd, False)
    control = socket.socket(fileno=control_fd)
    if not once:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps; PID 1s report
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is pyci's to handle, not ours
    # no PDEATHSIG here: it fires when the *thread* that started us exits, and pyci is
    # threaded. When pyci dies the control socket reaches EOF and we exit, and every PID 1
    # (PDEATHSIG) with us.
    with contextlib.suppress(OSError):  # no libseccomp: a container asking for it will fail
        seccomp.preload()
    capabilities.preload()
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)  # every PID 1's own stdio
    cloner = _Cloner()
    cloner.prepare_netns()
    while True:
        request = _receive(control)
        if request is None:
            return
        spec, status, stdio = request
        try:
            clone = cloner.clone(spec)
        except OSError as exc:
            _send(status, error=f"container {spec.id}: {exc}")
            clone = _Clone(-1, -1, None, -1)
        pid1, pidfd = clone.pid, clone.pidfd
        if pid1 == 0:
            control.close()
            run_pid1(spec, status, stdio, clone, devnull)
        if pidfd >= 0:
            with contextlib.suppress(OSError):
                socket.send_fds(status, [json.dumps({"pid1": pid1}).encode()], [pidfd])
            os.close(pidfd)
        status.close()
        for fd in stdio:
            os.close(fd)
        if not once:
            cloner.prepare_netns()  # while this container runs
        if once:
            if pid1 > 0:
                os.waitpid(pid1, 0)  # PID 1 dies with us (PDEATHSIG): outlive it
            return


def main(argv: list[str]) -> int:
    mode, fd = argv[0], int(argv[1])
    serve(fd, once=mode == "--once")
    # nothing to flush or finalize: skipping the interpreter's teardown (~30 ms) lets pyci,
    # which waits for us at its exit, end that much sooner
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
