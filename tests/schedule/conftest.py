"""A small real job runner for scheduler tests: each job's script runs in `sh -c`."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest

from runner.core.events import Event, JobOutcome
from runner.core.jobspec import JobSpec


@dataclass
class Recorder:
    """A reporter that keeps every event, with the time it arrived."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, event: Event) -> None:
        with self.lock:
            self.events.append((time.monotonic(), event))

    def of(self, kind: type) -> list:
        return [e for _, e in self.events if isinstance(e, kind)]

    def time_of(self, kind: type, job: str) -> float:
        return next(t for t, e in self.events if isinstance(e, kind) and e.job == job)


@dataclass
class ShRunner:
    """Runs `before_script + script` in one `sh -c` in its own session; cancel kills the group."""

    calls: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)

    def __call__(
        self, job: JobSpec, attempt: int, upstream: tuple[str, ...], cancel: threading.Event
    ) -> JobOutcome:
        self.calls.append((job.name, attempt, upstream))
        script = "\n".join((*job.before_script, *job.script))
        env = {**os.environ, **{v.key: v.value for v in job.variables}}
        env["CI_JOB_NAME"] = job.name
        proc = subprocess.Popen(["sh", "-ec", script], env=env, start_new_session=True)
        deadline = time.monotonic() + (job.timeout or 30)
        while proc.poll() is None:
            if cancel.is_set() or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if cancel.is_set():
                    return JobOutcome("canceled", failure_reason="canceled")
                return JobOutcome("failed", failure_reason="job_execution_timeout")
            time.sleep(0.005)
        if proc.returncode == 0:
            return JobOutcome("success", exit_code=0)
        return JobOutcome("failed", exit_code=proc.returncode, failure_reason="script_failure")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sh_runner() -> ShRunner:
    return ShRunner()
