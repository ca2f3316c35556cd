"""The `shell` executor: the host's bash (else sh), no isolation of files or network.

Each stage script is written to the job's scratch dir and run with the host's environment plus
`StageCommand.env`, stdin from /dev/null, stdout and stderr merged into the job log.

A job must not outlive its stage, whatever it started (`sleep 600 &`, a daemon that called
setsid). Where the host allows it (root: we ask for a PID namespace only), every stage runs as
PID 1 of a fresh PID namespace. The thread that starts the stage calls `unshare(CLONE_NEWPID)`
(which only decides where that thread's next child goes), spawns
`setpriv --pdeathsig KILL -- /bin/sh -c '"$@"' pyci-init <shell> <script>` and at once returns to
its own namespace with `setns`. When that init ends, or is killed on timeout or cancel, the
kernel kills every process left in the namespace before the init's exit is reported, and no
process can leave it. If pyci itself dies, `pdeathsig` kills the init and so the namespace.
(Earlier versions wrapped this in `unshare --fork --kill-child`: two more programs per stage,
and util-linux's unshare printed `sigprocmask unblock failed` into the log when its child was
killed.) Without that ability the fallback kills the shell's session (everything started under
it that did not call setsid).

Waiting costs no polling: a pidfd of the stage's process becomes readable when it exits; the
cancel event is looked at every `_CANCEL_CHECK` seconds while the stage runs.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from executors.base import BuildDirs, ExecResult, ExecutorError, JobLog, StageCommand
from executors.linux import syscalls
from runner.core.jobspec import JobSpec

_CANCEL_CHECK = 0.05  # seconds between looks at the cancel event while a stage runs
_READ_SIZE = 65536

_pid_namespace_ok: bool | None = None
_own_pid_namespace: int | None = None  # fd of pyci's PID namespace, to return to after a spawn
_probe_lock = threading.Lock()


def pid_namespaces_available() -> bool:
    """Whether this process may run stages in their own PID namespace (probed once)."""
    global _pid_namespace_ok, _own_pid_namespace
    with _probe_lock:
        if _pid_namespace_ok is None:
            _pid_namespace_ok = False
            if shutil.which("setpriv") and hasattr(os, "pidfd_open"):
                try:
                    own = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return False
                try:
                    syscalls.unshare(syscalls.CLONE_NEWPID)
                    syscalls.setns(own, syscalls.CLONE_NEWPID)
                except OSError:
                    os.close(own)
                else:
                    _own_pid_namespace = own
                    _pid_namespace_ok = True
        return _pid_namespace_ok


@contextlib.contextmanager
def _children_in_new_pid_namespace():
    """This thread's next child is PID 1 of a new PID namespace; the thread itself, and every
    other thread, stay where they are."""
    assert _own_pid_namespace is not None
    syscalls.unshare(syscalls.CLONE_NEWPID)
    try:
        yield
    finally:
        # back, so the next child of this thread (git, a hook) is an ordinary process again
        syscalls.setns(_own_pid_namespace, syscalls.CLONE_NEWPID)


_found: dict[tuple[str, str], str | None] = {}


def _which(name: str) -> str | None:
    # remembered per PATH: a stat per PATH entry for every job otherwise
    key = (name, os.environ.get("PATH", ""))
    if key not in _found:
        _found[key] = shutil.which(name)
    return _found[key]


def find_shell(preferred: str | None = None) -> tuple[str, str]:
    """(name, path) of the shell to use: `preferred`, else bash, else sh."""
    for name in [preferred] if preferred else ["bash", "sh"]:
        path = _which(name)
        if path:
            return Path(name).name, path
    raise ExecutorError(f"shell {preferred or 'bash or sh'} not found on this host")


@dataclass(frozen=True)
class ShellSettings:
    shell: str | None = None  # None: bash, else sh
    isolate_pids: bool | None = None  # None: when the host allows it


class ShellExecutor:
    name = "shell"

    def __init__(self, settings: ShellSettings | None = None) -> None:
        # nothing here may fail: problems of the host are ExecutorErrors from prepare(), so
        # the build reports them as a system failure of the job
        self.settings = settings or ShellSettings()
        self.shell_name = Path(self.settings.shell or "bash").name
        self.shell_path = ""
        self.isolate = False
        self._dirs: BuildDirs | None = None
        self._job_env: dict[str, str] = {}  # the job's variables, for an interactive shell

    @property
    def dirs(self) -> BuildDirs:
        if self._dirs is None:
            raise ExecutorError("the shell executor was not prepared")
        return self._dirs

    # -- Executor protocol ---------------------------------------------------------------
    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None:
        self.shell_name, self.shell_path = find_shell(self.settings.shell)
        wanted = self.settings.isolate_pids
        self.isolate = pid_namespaces_available() if wanted is None else wanted
        if self.isolate and not pid_namespaces_available():
            raise ExecutorError("PID namespaces are not available to this user")
        self._dirs = dirs
        self._job_env = {v.key: v.value for v in job.variables if not v.file}
        self._job_env["CI_PROJECT_DIR"] = str(dirs.project_dir)
        self._job_env["CI_BUILDS_DIR"] = str(dirs.project_dir.parent)
        dirs.scratch.mkdir(parents=True, exist_ok=True)
        log.write(f"Using Shell ({self.shell_name}) executor...\n")
        if job.image is not None:
            # said once, in the job log: the job runs on this host, not in that image
            log.write(f"The shell executor ignores image: {job.image.name} (runs on this host)\n")

    def project_dir_in_job(self) -> str:
        return str(self.dirs.project_dir)

    def builds_dir_in_job(self) -> str:
        return str(self.dirs.project_dir.parent)

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult:
        script = self.dirs.scratch / f"{cmd.stage}.sh"
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as handle:
            handle.write(cmd.script)
        try:
            return self._run_script(script, cmd, log, cancel)
        finally:
            script.unlink(missing_ok=True)

    def interactive_shell(
        self,
        stdin: int = 0,
        stdout: int = 1,
        stderr: int = 2,
        command: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> int:
        """`pyci shell` / `--shell-on-failure`: the host's shell (or `command`) in the job's
        copy of the repository, with the job's variables, on the caller's terminal (`stdin`).
        `setsid --ctty` makes that terminal the session's controlling one, so job control and
        Ctrl-C work as in any terminal. Whatever it started is killed when it exits."""
        argv = command or (self.shell_path or self.shell_name, "-i")
        env = {**os.environ, **self._job_env}
        env.setdefault("TERM", "xterm")
        try:
            proc = subprocess.Popen(
                ["setsid", "--ctty", *argv],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=self.dirs.project_dir,
                env=env,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start {argv[0]}: {exc}") from exc
        code = _wait_unless_canceled(proc, cancel)
        _kill_session(proc.pid)  # setsid made the shell a session leader: its session
        return code if code >= 0 else 128 - code

    def cleanup(self) -> None:
        # the build owns and removes the directories; nothing of ours outlives a stage
        self._dirs = None

    # -- running one script ----------------------------------------------------------------
    def _argv(self, script: Path) -> list[str]:
        argv = [self.shell_path]
        if self.shell_name == "bash":
            argv += ["--noprofile", "--norc"]
        argv.append(str(script))
        if self.isolate:
            # PID 1 of a namespace ignores signals it has no handler for, so the job's shell
            # must not be PID 1 (`kill $$` has to work): a plain sh is init and waits for it
            argv = [
                *("setpriv", "--pdeathsig", "KILL", "--"),
                *("/bin/sh", "-c", '"$@"; exit $?', "pyci-init"),
                *argv,
            ]
        return argv

    def _run_script(
        self, script: Path, cmd: StageCommand, log: JobLog, cancel: threading.Event
    ) -> ExecResult:
        cwd = self.dirs.project_dir if self.dirs.project_dir.is_dir() else self.dirs.scratch
        namespace = _children_in_new_pid_namespace() if self.isolate else contextlib.nullcontext()
        try:
            with namespace:
                proc = subprocess.Popen(
                    self._argv(script),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env={**os.environ, **cmd.env},
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start {self.shell_path}: {exc}") from exc
        assert proc.stdout is not None
        output = _Output(proc.stdout, log)
        try:
            ended = _wait_for_exit(proc, cmd.timeout, cancel, output)
            if ended != "exited":
                self._kill(proc)
            proc.wait()
            if not self.isolate:
                _kill_session(proc.pid)  # leftovers of a finished script, too
            output.drain()
        finally:
            output.close()
        if output.failures:
            raise output.failures[0]
        code = proc.returncode
        if ended != "exited":
            return ExecResult(None, timed_out=ended == "timeout", canceled=ended == "cancel")
        return ExecResult(code if code >= 0 else 128 - code)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if self.isolate:
            # the namespace's init: the kernel kills and reaps the rest of the namespace before
            # the init's own exit is reported, so when proc.wait() returns nothing is left
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        else:
            _kill_session(proc.pid)


def _wait_unless_canceled(proc: subprocess.Popen[bytes], cancel: threading.Event | None) -> int:
    """The interactive shell's exit code; once `cancel` is set, its session is killed."""
    if cancel is None:
        return proc.wait()
    while True:
        try:
            return proc.wait(timeout=_CANCEL_CHECK)
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                _kill_session(proc.pid)
                return proc.wait()


def _wait_for_exit(
    proc: subprocess.Popen[bytes], timeout: float | None, cancel, output: _Output
) -> str:
    """ "exited", "timeout" or "cancel", whichever comes first, copying output meanwhile.
    Sleeps on the process's pidfd and the output pipe in one poll, so an exit is seen at once
    (no polling interval added to every stage) and no reader thread has to be started."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        pidfd = -1  # already reaped, or an old kernel: fall back to short sleeps
    try:
        poller = select.poll()
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        poller.register(output.fd, select.POLLIN)
        while proc.poll() is None:
            if cancel.is_set():
                return "cancel"
            wait = _CANCEL_CHECK if pidfd >= 0 else 0.005
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                wait = min(wait, left)
            for fd, _events in poller.poll(max(1, int(wait * 1000 + 0.999))):
                if fd == output.fd and not output.read_once():
                    poller.unregister(output.fd)  # EOF: only the exit is left to wait for
        return "exited"
    finally:
        if pidfd >= 0:
            os.close(pidfd)


class _Output:
    """Copies the job's output to the log. Keeps draining the pipe even if the log fails, so
    a broken reporter cannot block the job on a full pipe; the failure is raised afterwards."""

    def __init__(self, stream, log: JobLog) -> None:
        self.stream = stream
        self.fd: int = stream.fileno()
        self.log = log
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.failures: list[BaseException] = []
        self.ended = False

    def read_once(self) -> bool:
        """One read; False at the end of the output."""
        if self.ended:
            return False
        chunk = os.read(self.fd, _READ_SIZE)
        if not chunk:
            self.ended = True
            self._deliver(self.decoder.decode(b"", final=True))
            return False
        self._deliver(self.decoder.decode(chunk))
        return True

    def drain(self) -> None:
        while self.read_once():
            pass

    def close(self) -> None:
        self.stream.close()

    def _deliver(self, text: str) -> None:
        if text and not self.failures:
            try:
                self.log.write(text)
            except Exception as exc:
                self.failures.append(exc)


def session_members(sid: int) -> list[int]:
    """Live processes whose session id is `sid` (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields: state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry))
    return members


def _kill_session(sid: int) -> None:
    for _ in range(50):
        members = session_members(sid)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
