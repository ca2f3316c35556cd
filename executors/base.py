"""The executor interface: prepare an environment, run stage commands in it, clean up.

An executor never sees YAML, rules or other jobs: it gets a `JobSpec` and, one build stage at a
time, a `StageCommand` (a generated script plus how to run it). A script that exits non-zero is a
*result* (`ExecResult`); an environment that cannot be set up or used (image pull failed, mount
failed) is an `ExecutorError` that carries GitLab's failure reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runner.core.events import FailureReason
from runner.core.jobspec import JobSpec


class JobLog(Protocol):
    """Where an executor writes what the job prints (masked and fanned out by the caller)."""

    def write(self, text: str) -> None: ...


@dataclass(frozen=True)
class StageCommand:
    """One build stage to run: `script` is the complete text of a shell script.

    `stage` is gitlab-runner's name for it (`get_sources`, `step_script`, `after_script`,
    `archive_cache`, ...). `timeout` is in seconds (None: no limit of its own).
    `env` is the environment the shell starts with; the script itself exports job variables.
    """

    stage: str
    script: str
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None: killed before it exited (timeout, cancel)
    timed_out: bool = False
    canceled: bool = False
    out_of_memory: bool = False


class ExecutorError(Exception):
    """The environment failed (not the user's script); `reason` is GitLab's failure reason."""

    def __init__(self, message: str, reason: FailureReason = "runner_system_failure"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class BuildDirs:
    """Host-side directories of one job, owned by the build, handed to the executor.

    `project_dir` is where the job's copy of the repository lives on the host; the executor
    decides where the job sees it (`CI_PROJECT_DIR`). `scratch` is the job's private temp area,
    removed when the job ends.
    """

    project_dir: Path
    scratch: Path


class Executor(Protocol):
    """Contract: `prepare` once, `run` any number of times, `cleanup` always (idempotent,
    never raises). `run` must return promptly after `cancel` is set, killing everything the
    command started."""

    name: str
    # the shell the build writes its scripts for (`bash`, `sh`): known once prepared
    shell_name: str

    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None: ...

    def project_dir_in_job(self) -> str:
        """The path at which the job sees its repository (CI_PROJECT_DIR)."""
        ...

    def builds_dir_in_job(self) -> str:
        """The path at which the job sees the builds root (CI_BUILDS_DIR)."""
        ...

    def interactive_shell(
        self,
        stdin: int = 0,
        stdout: int = 1,
        stderr: int = 2,
        command: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> int:
        """A shell (or `command`) where the prepared job runs, on the caller's terminal
        (`pyci shell`, `--shell-on-failure`); returns its exit code. Setting `cancel` kills
        it and whatever it started; the call still returns only once all of that is gone."""
        ...

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult: ...

    def cleanup(self) -> None: ...


class ExecutorWrapper:
    """An executor that hands everything to `inner`: a subclass overrides what it changes
    (the debug shells replace or follow the `step_script` stage) and nothing else."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def shell_name(self) -> str:
        return self.inner.shell_name

    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None:
        self.inner.prepare(job, dirs, log)

    def project_dir_in_job(self) -> str:
        return self.inner.project_dir_in_job()

    def builds_dir_in_job(self) -> str:
        return self.inner.builds_dir_in_job()

    def interactive_shell(
        self,
        stdin: int = 0,
        stdout: int = 1,
        stderr: int = 2,
        command: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> int:
        return self.inner.interactive_shell(stdin, stdout, stderr, command, cancel)

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult:
        return self.inner.run(cmd, log, cancel)

    def cleanup(self) -> None:
        self.inner.cleanup()
