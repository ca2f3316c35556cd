"""One conformance suite, the same scenarios on every executor (`shell` and `container`).

Each scenario is the executor contract of executors/base.py seen from the build: output
reaches the log, exit codes and environments pass through, timeouts and cancels return
promptly with nothing left running, the job's files land in the project directory, and
cleanup can be called twice.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import BuildDirs, StageCommand
from executors.container.executor import ContainerExecutor, ContainerSettings
from executors.shell import ShellExecutor
from runner.jobspec import JobSpec


class Log:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@pytest.fixture
def dirs() -> Iterator[BuildDirs]:
    root = Path(tempfile.mkdtemp(prefix="pyci-conformance-"))
    (root / "project").mkdir()
    (root / "project.tmp").mkdir()
    (root / "project" / "input.txt").write_text("from the repository\n")
    yield BuildDirs(root / "project", root / "project.tmp")
    shutil.rmtree(root)


@pytest.fixture(params=["shell", "container"])
def executor(request, dirs, busybox_rootfs, state_dir, launcher):
    if request.param == "shell":
        executor = ShellExecutor()
    else:
        settings = ContainerSettings(
            state_dir=state_dir, default_image=str(busybox_rootfs), network="none"
        )
        executor = ContainerExecutor(settings, launcher)
    job = JobSpec(name="conformance", stage="test", stage_index=0, script=("true",))
    executor.prepare(job, dirs, Log())
    yield executor
    executor.cleanup()
    executor.cleanup()  # idempotent


def run(executor, script: str, timeout: float | None = 30, cancel=None, **env):
    log = Log()
    result = executor.run(
        StageCommand("step_script", script, timeout, env), log, cancel or threading.Event()
    )
    return result, log.text


def test_output_reaches_the_log(executor):
    result, text = run(executor, "echo one\necho two >&2\n")
    assert result.exit_code == 0
    assert text.splitlines() == ["one", "two"]


def test_exit_code_passes_through(executor):
    result, _ = run(executor, "exit 7\n")
    assert (result.exit_code, result.timed_out, result.canceled) == (7, False, False)


def test_command_environment_is_seen(executor):
    _, text = run(executor, 'echo "$GREETING $CI_JOB_NAME"\n', GREETING="hi", CI_JOB_NAME="j")
    assert text == "hi j\n"


def test_stdin_is_empty(executor):
    _, text = run(executor, "cat; echo end\n")
    assert text == "end\n"


def test_runs_in_the_project_directory(executor, dirs):
    _, text = run(executor, "cat input.txt\necho made > output.txt\n")
    assert text == "from the repository\n"
    assert (dirs.project_dir / "output.txt").read_text() == "made\n"
    assert executor.project_dir_in_job().endswith("/" + dirs.project_dir.name)


def test_timeout_returns_promptly_and_kills_everything(executor):
    started = time.monotonic()
    result, _ = run(executor, "sleep 60 &\nsleep 60\n", timeout=0.5)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5


def test_cancel_returns_promptly(executor):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result, _ = run(executor, "sleep 60\n", cancel=cancel)
    assert result.canceled and result.exit_code is None
    assert time.monotonic() - started < 5


def test_background_processes_do_not_outlive_the_stage(executor, dirs):
    marker = "pyci-conformance-sleeper"
    result, _ = run(executor, f"sh -c 'exec -a {marker} sleep 60' &\necho started\n")
    assert result.exit_code == 0
    time.sleep(0.2)
    leftover = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, marker)]
    assert leftover == []


def test_killed_by_a_signal_reports_128_plus_signal(executor):
    result, _ = run(executor, "kill -9 $$\n")
    assert result.exit_code == 137


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False
