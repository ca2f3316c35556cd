"""pyci's own failures inside a run: whatever a job's thread raises ends that job, never the
loop. Driven through the scheduler's public API with reporters and runners that raise; each
run is watched: a loop still waiting WATCHDOG_SECONDS later is a hang and fails the test."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest

from runner.core.events import Event, JobFinished, JobOutcome, JobStarted, LogChunk
from runner.schedule.scheduler import PipelineResult, Scheduler
from tests.schedule.conftest import Recorder
from tests.schedule.helpers import job

WATCHDOG_SECONDS = 10.0


def run_watched(scheduler: Scheduler) -> PipelineResult:
    """`scheduler.run()` on a thread; a run that does not end in time hangs: it is canceled
    and the test fails."""
    results: list[PipelineResult] = []
    thread = threading.Thread(target=lambda: results.append(scheduler.run()), daemon=True)
    thread.start()
    thread.join(WATCHDOG_SECONDS)
    if thread.is_alive():
        scheduler.cancel.set()
        pytest.fail(f"the scheduler still waits {WATCHDOG_SECONDS:g}s later: it hangs")
    return results[0]


def succeed(job_spec, attempt, upstream, cancel) -> JobOutcome:
    return JobOutcome("success", exit_code=0)


class FailingFor(Recorder):
    """Records events, but raises for the events of `job` of the kinds given, as a log file
    on a full disk would."""

    def __init__(self, job: str, kinds: tuple[type[JobStarted | LogChunk | JobFinished], ...]):
        super().__init__()
        self.job = job
        self.kinds = kinds

    def handle(self, event: Event) -> None:
        super().handle(event)
        if isinstance(event, self.kinds) and event.job == self.job:  # kinds: job events
            raise OSError(28, "No space left on device")


@pytest.fixture
def fallback_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where tracebacks that no job log can take are written (the temporary directory)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_log_failing_as_the_job_starts_fails_that_job_only(fallback_dir, capsys):
    reporter = FailingFor("broken", (JobStarted, LogChunk))
    jobs = [
        job("broken", "build"),
        job("fine", "build"),
        job("after-broken", "test", needs=["broken"]),
        job("always", "deploy", when="always"),
    ]
    scheduler = Scheduler(jobs, succeed, reporter, concurrency=2)
    result = run_watched(scheduler)
    outcomes = result.outcomes
    assert {name: o.status for name, o in outcomes.items()} == {
        "broken": "failed",
        "fine": "success",
        "after-broken": "skipped",
        "always": "success",
    }
    assert outcomes["broken"].failure_reason == "runner_system_failure"
    assert "No space left on device" in (outcomes["broken"].message or "")
    assert result.status == "failed" and result.exit_code == 1
    # the job's log is what failed: one line on stderr, the traceback in a file it names
    line = capsys.readouterr().err.strip()
    assert line.startswith("pyci: job broken: OSError: [Errno 28] No space left on device")
    (traceback_file,) = fallback_dir.glob("pyci-traceback-*.txt")
    assert f"(traceback in {traceback_file})" in line
    assert "Traceback (most recent call last)" in traceback_file.read_text()


def test_a_bug_in_the_runner_puts_its_traceback_in_the_job_log(recorder):
    def runner(job_spec, attempt, upstream, cancel):
        raise KeyError("no such thing")

    result = run_watched(Scheduler([job("buggy", "build")], runner, recorder, concurrency=1))
    assert result.outcomes["buggy"].failure_reason == "runner_system_failure"
    (chunk,) = [e for e in recorder.of(LogChunk) if e.job == "buggy"]
    assert "Traceback (most recent call last)" in chunk.text
    assert "KeyError: 'no such thing'" in chunk.text


# the thread does end with its exception (threading prints it); the job must end too
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_thread_ended_by_system_exit_still_ends_its_job(recorder):
    def runner(job_spec, attempt, upstream, cancel):
        raise SystemExit(3)  # not an Exception: only the thread's last word catches it

    jobs = [job("exits", "build"), job("next", "test")]
    result = run_watched(Scheduler(jobs, runner, recorder, concurrency=1))
    assert result.outcomes["exits"].status == "failed"
    assert result.outcomes["exits"].failure_reason == "runner_system_failure"
    assert result.outcomes["next"].status == "skipped"


def test_a_reporter_failing_on_the_loops_own_events_ends_no_job(fallback_dir, capsys):
    reporter = FailingFor("first", (JobFinished,))
    jobs = [job("first", "build"), job("second", "test")]
    result = run_watched(Scheduler(jobs, succeed, reporter, concurrency=1))
    assert {name: o.status for name, o in result.outcomes.items()} == {
        "first": "success",
        "second": "success",
    }
    assert capsys.readouterr().err.startswith("pyci: job first: OSError: [Errno 28]")


def test_an_outside_cancel_event_cancels_the_run(recorder):
    """`cancel`, given by the caller, is the run's (the output going away sets it)."""
    cancel = threading.Event()

    def runner(job_spec, attempt, upstream, job_cancel):
        cancel.set()
        job_cancel.wait(WATCHDOG_SECONDS)
        return JobOutcome("canceled", failure_reason="canceled")

    jobs = [job("a", "build"), job("b", "test")]
    result = run_watched(Scheduler(jobs, runner, recorder, concurrency=1, cancel=cancel))
    assert result.status == "canceled"
    assert {name: o.status for name, o in result.outcomes.items()} == {
        "a": "canceled",
        "b": "canceled",
    }
