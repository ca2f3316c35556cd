"""The runtime side: start containers through the launcher and follow them to the end.

`Launcher` is the client of the single-threaded fork server (see launcher.py); it is safe to use
from any thread. `launch` returns a `RunningContainer` once PID 1 exists; `RunningContainer.wait`
returns when every process of the container is gone: the status socket reaches EOF when PID 1
exits, and an exiting PID 1 takes the whole pid namespace with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from executors.container import network
from executors.container.spec import MAX_MESSAGE, NET_READY, ContainerSpec, validate
from executors.statedirs import private_dir

_REPO_ROOT = Path(__file__).resolve().parents[2]


class ContainerError(Exception):
    """The container could not be set up (not the command's failure)."""


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int | None  # negative: killed by that signal; None: no report (killed early)
    timed_out: bool = False
    canceled: bool = False


class RunningContainer:
    def __init__(
        self,
        spec: ContainerSpec,
        status: socket.socket,
        pid1: int,
        pidfd: int,
        helper: subprocess.Popen[bytes] | None = None,
        exit_code: int | None = None,
    ):
        self.spec = spec
        self._helper = helper
        self.pid1 = pid1
        self._status = status
        self._pidfd = pidfd
        self._exit_code = exit_code  # reported already, while the start was awaited
        self._error: str | None = None
        self._closed = False

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal PID 1; SIGKILL takes the whole pid namespace with it."""
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def fileno(self) -> int:
        return self._status.fileno()

    def handle_status(self) -> bool:
        """Read one status message; False once the container is completely gone."""
        try:
            data = self._status.recv(MAX_MESSAGE)
        except ConnectionResetError:
            data = b""
        if not data:
            self._close()
            return False
        message = json.loads(data)
        if "exit" in message:
            self._exit_code = message["exit"]
        elif "error" in message and self._error is None:
            self._error = message["error"]
        return True

    def wait(
        self,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        on_output: tuple[int, Callable[[bytes], None]] | None = None,
    ) -> ContainerExit:
        """Follow the container to its end, copying output from `on_output`'s fd to its
        callback; kill it at `timeout` seconds or when `cancel` is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = canceled = False
        with selectors.DefaultSelector() as selector:
            selector.register(self._status, selectors.EVENT_READ, "status")
            if on_output is not None:
                selector.register(on_output[0], selectors.EVENT_READ, "output")
            alive = True
            while alive or (on_output is not None and selector.get_map().get(on_output[0])):
                slice_ = 0.1 if cancel is not None else None
                if deadline is not None and not (timed_out or canceled):
                    left = max(0.0, deadline - time.monotonic())
                    slice_ = left if slice_ is None else min(slice_, left)
                events = selector.select(slice_ if alive else 1.0)
                if not events and not alive:
                    break  # output writers leaked outside the container: stop waiting
                for key, _ in events:
                    if key.data == "status":
                        alive = self.handle_status()
                        if not alive:
                            selector.unregister(self._status)
                    else:
                        assert on_output is not None
                        chunk = os.read(on_output[0], 65536)
                        if chunk:
                            on_output[1](chunk)
                        else:
                            selector.unregister(on_output[0])
                if alive and not (timed_out or canceled):
                    if cancel is not None and cancel.is_set():
                        canceled = True
                        self.kill()
                    elif deadline is not None and time.monotonic() >= deadline:
                        timed_out = True
                        self.kill()
        if self._error is not None and self._exit_code is None:
            raise ContainerError(self._error)
        if self._error is not None and self._exit_code == 127:
            raise ContainerError(self._error)
        return ContainerExit(self._exit_code, timed_out, canceled)

    def _await_pid1_exit(self, timeout: float = 10.0) -> None:
        """The status socket closes while PID 1 exits, before the kernel has killed the rest of
        the pid namespace and released its mounts; the pidfd turns readable only after that."""
        if self._pidfd >= 0:
            import select

            select.select([self._pidfd], [], [], timeout)

    def _close(self) -> None:
        if not self._closed:
            self._await_pid1_exit()
            self._closed = True
            self._status.close()
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
            if self._helper is not None:
                self._helper.wait()

    def __del__(self) -> None:
        self._close()


def _launcher_command(mode: str, fd: int) -> list[str]:
    # -S: the launcher needs only the standard library and our package (on PYTHONPATH, see
    # _launcher_env); skipping `site` (.pth files, import hooks of editable installs) saves
    # it ~15-50 ms of start-up, which `pyci run` pays on its second core while loading
    return [sys.executable, "-S", "-m", "executors.container.launcher", mode, str(fd)]


def _launcher_env() -> dict[str, str]:
    """The launcher's whole environment: where our package is, nothing of pyci's. Every PID 1
    is a fork of it, and pyci's environment may hold secrets (DOCKER_AUTH_CONFIG, tokens)
    that a container must never find in /proc/1/environ or its memory."""
    return {"PYTHONPATH": str(_REPO_ROOT)}


class Launcher:
    """Starts containers. mode `serve`: one fork server for all; `once`: a fresh helper each."""

    def __init__(self, mode: str = "serve"):
        if mode not in ("serve", "once"):
            raise ValueError(f"unknown launcher mode {mode!r}")
        self.mode = mode
        self._lock = threading.Lock()
        self._server: tuple[socket.socket, subprocess.Popen[bytes]] | None = None

    def _spawn(self, mode: str) -> tuple[socket.socket, subprocess.Popen[bytes]]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            process = subprocess.Popen(
                _launcher_command(f"--{mode}", theirs.fileno()),
                pass_fds=[theirs.fileno()],
                # it never prints; stderr stays pyci's, for a traceback if the server itself
                # breaks (each PID 1 points its own stdio at /dev/null first thing)
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=_launcher_env(),
                cwd="/",
            )
        return ours, process

    def start(self) -> None:
        """Spawn the fork server now (`serve` mode): pyci calls this before its scheduler
        starts threads, so the server is never forked from a threaded process."""
        if self.mode == "serve":
            with self._lock:
                if self._server is None or self._server[1].poll() is not None:
                    self._server = self._spawn("serve")

    def launch(self, spec: ContainerSpec, stdin: int, stdout: int, stderr: int) -> RunningContainer:
        validate(spec)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno(), stdin, stdout, stderr]
        payload = spec.to_json().encode()
        once: tuple[socket.socket, subprocess.Popen[bytes]] | None = None
        try:
            if self.mode == "once":
                once = self._spawn("once")
                socket.send_fds(once[0], [payload], fds)
            else:
                with self._lock:
                    if self._server is None or self._server[1].poll() is not None:
                        self._server = self._spawn("serve")
                    socket.send_fds(self._server[0], [payload], fds)
        finally:
            theirs.close()
        try:
            pid1, pidfd, exit_code = self._await_start(spec, ours)
        except BaseException:
            ours.close()
            if once is not None:
                once[1].wait()
            raise
        finally:
            if once is not None:
                once[0].close()
        return RunningContainer(spec, ours, pid1, pidfd, once[1] if once else None, exit_code)

    @staticmethod
    def _await_start(spec: ContainerSpec, status: socket.socket) -> tuple[int, int, int | None]:
        """Until PID 1 exists (and, for `bridge`, has its veth): (host pid, pidfd, exit code
        if PID 1 reported it meanwhile). PID 1 and the server write to the same socket, so a
        quick command's exit can arrive before the server's note of PID 1 when the server is
        descheduled after the clone (about 1 container in 300 on a loaded 2-core machine)."""
        pid1 = pidfd = -1
        exit_code = None
        network_pending = spec.network.mode == "bridge"  # until the veth is in
        netns_ready = False  # PID 1 asked for it (may arrive before the server's pid1 note)
        while pid1 < 0 or network_pending:
            data, fds, _flags, _addr = socket.recv_fds(status, MAX_MESSAGE, 1)
            if not data:
                raise ContainerError(f"container {spec.id}: the launcher exited")
            message = json.loads(data)
            if "pid1" in message:
                pid1, pidfd = message["pid1"], fds[0]
            elif message.get("netns"):
                netns_ready = True
            elif "exit" in message:
                exit_code = message["exit"]
            elif "error" in message:
                if pidfd >= 0:
                    os.close(pidfd)
                raise ContainerError(message["error"])
            if network_pending and netns_ready and pid1 > 0:
                network_pending = False
                try:
                    network.attach_veth(spec.network, pid1)
                except Exception as exc:
                    with contextlib.suppress(ProcessLookupError):  # it may have exited
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    os.close(pidfd)
                    # PID 1 builds its root meanwhile: if that failed, PID 1 is gone (hence
                    # this error) and its own message, sent before it exited, is the cause
                    cause = _sent_error(status) or f"container {spec.id}: network: {exc}"
                    raise ContainerError(cause) from exc
                # PID 1 may have failed its set-up after the veth went in: its error waits
                # on the socket for wait() to report
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    status.send(NET_READY)
        return pid1, pidfd, exit_code

    def close(self) -> None:
        """Stop the fork server; it kills every container it still keeps."""
        with self._lock:
            if self._server is not None:
                control, process = self._server
                control.close()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                self._server = None


def _sent_error(status: socket.socket) -> str | None:
    """An error message already waiting on the status socket, without waiting for one."""
    while True:
        try:
            data = status.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        if not data:
            return None
        message = json.loads(data)
        if "error" in message:
            return str(message["error"])


_shared: Launcher | None = None
_shared_lock = threading.Lock()


def shared_launcher() -> Launcher:
    """The process-wide fork server, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Launcher("serve")
        return _shared


def close_shared_launcher() -> None:
    """Stop the process-wide fork server if it was started (at pyci's exit)."""
    with _shared_lock:
        if _shared is not None:
            _shared.close()


DEFAULT_STATE_DIR = Path(os.environ.get("PYCI_RUN_DIR", "/run/pyci"))


@dataclass(frozen=True)
class Scratch:
    """Host-side directories of one container under `<state>/containers/<id>/`: the overlay's
    upper, work and merged dirs, generated files (`etc/`) and an `owner` file holding the pid
    of the pyci process that made it, which recovery uses to spot leftovers of a dead run."""

    root: Path

    @classmethod
    def create(cls, state_dir: Path, container_id: str) -> Scratch:
        # the upper dir holds what the job wrote (setuid binaries, devices): no local user
        # may walk to it, so the state dir is 0700 (checked, repaired or refused each time)
        root = private_dir(state_dir) / "containers" / container_id
        for name in ("upper", "work", "merged", "etc"):
            (root / name).mkdir(parents=True, exist_ok=True)
        (root / "owner").write_text(str(os.getpid()))
        return cls(root)

    @property
    def upper(self) -> str:
        return str(self.root / "upper")

    @property
    def work(self) -> str:
        return str(self.root / "work")

    @property
    def merged(self) -> str:
        return str(self.root / "merged")

    def write_file(self, name: str, text: str) -> str:
        """Write a generated file (skipped when unchanged: every stage asks for the same)."""
        path = self.root / "etc" / name
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == text:
                return str(path)
        path.write_text(text)
        return str(path)

    def remove(self) -> None:
        remove_tree(self.root)


def remove_tree(path: Path) -> None:
    """rmtree that copes with overlayfs' work dir (mode 000 `work/work`, which only root may
    enter) and with another removal of the same tree running meanwhile; idempotent."""
    import shutil

    def make_writable_and_retry(func: Callable[..., object], name: str, exc: tuple) -> None:
        if isinstance(exc[1], FileNotFoundError):
            return  # removed meanwhile by someone else
        with contextlib.suppress(OSError):
            if func in (os.rmdir, os.unlink):
                os.chmod(os.path.dirname(name), 0o755)
                func(name)
            else:  # could not open or list the directory itself
                os.chmod(name, 0o755)
                shutil.rmtree(name, ignore_errors=True)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)


def run_container(
    launcher: Launcher,
    spec: ContainerSpec,
    stdin: bytes | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    on_output: Callable[[bytes], None] | None = None,
) -> tuple[ContainerExit, bytes]:
    """Run `spec` to its end; returns how it ended and its stdout+stderr (unless `on_output`
    takes them)."""
    chunks: list[bytes] = []
    sink = on_output or chunks.append
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
    try:
        container = launcher.launch(spec, in_r, out_w, out_w)
    except BaseException:
        for fd in (out_r, in_w):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(in_r)
    try:
        if in_w >= 0:
            writer = threading.Thread(target=_feed, args=(in_w, stdin or b""), daemon=True)
            writer.start()
        result = container.wait(timeout, cancel, (out_r, sink))
    finally:
        os.close(out_r)
    return result, b"".join(chunks)


def _feed(fd: int, data: bytes) -> None:
    try:
        with open(fd, "wb") as f:
            f.write(data)
    except OSError:
        pass  # the container exited without reading everything
