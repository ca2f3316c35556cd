"""The `shell` executor: the host's bash (else sh), no isolation of files or network.

Each stage script is written to the job's scratch dir and run with the host's environment plus
`StageCommand.env`, stdin from /dev/null, stdout and stderr merged into the job log.

A job must not outlive its stage, whatever it started (`sleep 600 &`, a daemon that called
setsid). Where the host allows it (root, or unprivileged user namespaces are not needed: we ask
for a PID namespace only), every stage runs as PID 1 of a fresh PID namespace:
`setpriv --pdeathsig KILL -- unshare --pid --fork --kill-child=KILL -- <shell> <script>`. When
that shell ends, or is killed on timeout or cancel, the kernel kills every process left in the
namespace, and no process can leave it. If pyci itself dies, `pdeathsig` kills `unshare`, whose
`--kill-child` kills the namespace's init, which takes the rest with it. Without that ability
the fallback kills the shell's session (everything started under it that did not call setsid).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from executors.base import BuildDirs, ExecResult, ExecutorError, JobLog, StageCommand
from runner.jobspec import JobSpec

_POLL = 0.02
_READ_SIZE = 65536

_pid_namespace_ok: bool | None = None


def pid_namespaces_available() -> bool:
    """Whether this process may run stages in their own PID namespace (probed once)."""
    global _pid_namespace_ok
    if _pid_namespace_ok is None:
        tools = shutil.which("unshare") and shutil.which("setpriv")
        if not tools:
            _pid_namespace_ok = False
        else:
            probe = subprocess.run(
                ["unshare", "--pid", "--fork", "--kill-child=KILL", "--", "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
            _pid_namespace_ok = probe.returncode == 0
    return _pid_namespace_ok


def find_shell(preferred: str | None = None) -> tuple[str, str]:
    """(name, path) of the shell to use: `preferred`, else bash, else sh."""
    for name in [preferred] if preferred else ["bash", "sh"]:
        path = shutil.which(name)
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
        dirs.scratch.mkdir(parents=True, exist_ok=True)
        log.write(f"Using Shell ({self.shell_name}) executor...\n")

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
                *("unshare", "--pid", "--fork", "--kill-child=KILL", "--"),
                *("/bin/sh", "-c", '"$@"; exit $?', "pyci-init"),
                *argv,
            ]
        return argv

    def _run_script(
        self, script: Path, cmd: StageCommand, log: JobLog, cancel: threading.Event
    ) -> ExecResult:
        cwd = self.dirs.project_dir if self.dirs.project_dir.is_dir() else self.dirs.scratch
        try:
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
        failures: list[BaseException] = []
        reader = threading.Thread(target=_pump, args=(proc.stdout, log, failures), daemon=True)
        reader.start()
        deadline = None if cmd.timeout is None else time.monotonic() + cmd.timeout
        timed_out = canceled = False
        while proc.poll() is None:
            if cancel.is_set():
                canceled = True
                break
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                break
            cancel.wait(_POLL)
        if timed_out or canceled:
            self._kill(proc)
        proc.wait()
        if not self.isolate:
            _kill_session(proc.pid)  # leftovers of a finished script, too
        reader.join()
        if failures:
            raise failures[0]
        code = proc.returncode
        if timed_out or canceled:
            return ExecResult(None, timed_out=timed_out, canceled=canceled)
        return ExecResult(code if code >= 0 else 128 - code)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if self.isolate:
            # kill the namespace's init (unshare's child): the kernel then kills and reaps the
            # whole namespace before unshare sees its child exit, so when proc.wait() returns
            # nothing of the job is left
            init = _children(proc.pid)
            for pid in init or [proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        else:
            _kill_session(proc.pid)


def _pump(stream, log: JobLog, failures: list[BaseException]) -> None:
    """Copy the job's output to the log. Keeps draining the pipe even if the log fails, so a
    broken reporter cannot block the job on a full pipe; the failure is raised afterwards."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fd = stream.fileno()

    def deliver(text: str) -> None:
        if text and not failures:
            try:
                log.write(text)
            except Exception as exc:
                failures.append(exc)

    while True:
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            break
        deliver(decoder.decode(chunk))
    deliver(decoder.decode(b"", final=True))
    stream.close()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


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
