"""Interactive shells in a job's container: `pyci shell JOB` and `pyci run --shell-on-failure`.

The container gets a pseudo-terminal of its own, never the user's terminal: making a terminal
the controlling one of the container's session would take it from the user's shell. pyci
relays bytes between the two (the user's terminal in raw mode, so Ctrl-C, Ctrl-D and line
editing reach the container's shell) and copies the window size, as `docker exec -it` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator

from executors.base import (
    BuildDirs,
    ExecResult,
    Executor,
    ExecutorWrapper,
    JobLog,
    StageCommand,
)
from runner.core.events import Event, Reporter
from runner.core.jobspec import JobSpec

# one shell on the terminal at a time, whatever the number of failing jobs
_TERMINAL = threading.Lock()


class HeldOutput:
    """A reporter that holds events back while a shell has the terminal (other jobs go on
    running; their lines would land in the middle of the user's session), then passes them
    on in order."""

    def __init__(self, inner: Reporter):
        self.inner = inner
        self._lock = threading.Lock()
        self._held: list[Event] | None = None

    def handle(self, event: Event) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(event)
                return
            self.inner.handle(event)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        with self._lock:
            self._held = []
        try:
            yield
        finally:
            with self._lock:
                held, self._held = self._held or [], None
                for event in held:
                    self.inner.handle(event)


def run_on_terminal(
    executor: Executor,
    command: tuple[str, ...] = (),
    stdin: int = 0,
    stdout: int = 1,
    cancel: threading.Event | None = None,
) -> int:
    """Run the executor's shell (or `command`) on a new pty relayed to stdin/stdout; setting
    `cancel` (the run's, for --shell-on-failure) kills the shell and ends this.

    The shell runs on a worker thread, which also removes its container (cgroups, mounts):
    when this thread is interrupted (`pyci shell` ended by SIGTERM or SIGHUP), the shell is
    canceled and the worker waited for, or the interpreter's exit would stop it half-way."""
    primary, secondary = os.openpty()
    _copy_window_size(stdin, primary)
    outcome: dict[str, int | BaseException] = {}
    cancel = cancel or threading.Event()

    def shell() -> None:
        try:
            outcome["code"] = executor.interactive_shell(
                secondary, secondary, secondary, command, cancel
            )
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=shell, name="pyci-shell", daemon=True)
    try:
        with _raw(stdin), _resizing(stdin, primary):
            worker.start()
            try:
                _relay(stdin, stdout, primary, worker)
            except BaseException:
                cancel.set()
                worker.join()
                raise
            os.close(secondary)
            secondary = -1
            _drain(primary, stdout)
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return int(outcome["code"])  # type: ignore[arg-type]


def _relay(stdin: int, stdout: int, primary: int, worker: threading.Thread) -> None:
    """Copy both ways until the container's shell is gone."""
    sources = [stdin, primary]
    while worker.is_alive():
        ready, _, _ = select.select(sources, [], [], 0.05)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if fd == primary:
                if data:
                    _write_all(stdout, data)
            elif data:
                _write_all(primary, data)
            else:  # the user's input ended (not a terminal): say so to the shell
                sources.remove(stdin)
                with contextlib.suppress(OSError):
                    _write_all(primary, b"\x04")


def _drain(primary: int, stdout: int) -> None:
    """What the shell wrote just before it exited; EIO once no writer is left."""
    while True:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if not ready:
            return
        try:
            data = os.read(primary, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(stdout, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _copy_window_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def _resizing(source: int, target: int) -> Iterator[None]:
    """Follow the user's window size (SIGWINCH) while the shell runs."""
    if threading.current_thread() is not threading.main_thread() or not os.isatty(source):
        yield
        return
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(source, target))
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


class ShellOnFailure(ExecutorWrapper):
    """An executor that opens a shell in the job's container when its script fails.

    Only the `step_script` stage counts (before_script + script), and only a failure of the
    script itself: a timeout or cancel means the user wants the run over. The shell opens
    before after_script, on the job's file system and repository as the script left them.
    Without a terminal on stdin there is nobody to type: one line in the job log says so.
    """

    def __init__(
        self, inner: Executor, output: HeldOutput | None = None, stdin: int = 0, stdout: int = 1
    ):
        super().__init__(inner)
        self._output = output
        self._stdin, self._stdout = stdin, stdout
        self._job_name = ""

    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None:
        self._job_name = job.name
        self.inner.prepare(job, dirs, log)

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult:
        result = self.inner.run(cmd, log, cancel)
        failed = result.exit_code not in (0, None) and not (result.timed_out or result.canceled)
        if cmd.stage == "step_script" and failed and not cancel.is_set():
            self._debug(result, log, cancel)
        return result

    def _debug(self, result: ExecResult, log: JobLog, cancel: threading.Event) -> None:
        """The shell, until the user exits it or the run is canceled (Ctrl-C goes to the
        shell, but a SIGTERM or SIGHUP to pyci cancels the run, and the shell with it)."""
        if not os.isatty(self._stdin):
            log.write("--shell-on-failure: stdin is not a terminal, no shell opened\n")
            return
        holding = self._output.holding() if self._output else contextlib.nullcontext()
        where = "in the container where" if self.name == "container" else "in the dir where"
        with _TERMINAL, holding:
            _say(
                self._stdout,
                f"\r\n*** job {self._job_name} failed (exit code {result.exit_code}): a shell "
                f"{where} its script ran; exit to go on ***\r\n",
            )
            run_on_terminal(self.inner, (), self._stdin, self._stdout, cancel)
            _say(self._stdout, f"*** back from the shell of {self._job_name} ***\n")


def _say(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        _write_all(fd, text.encode())
