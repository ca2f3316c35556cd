"""Reporters that cannot write: a closed pipe, a full disk. Each failure reaches whoever can
act on it (the run, or the job whose log failed) and no other reporter misses an event."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from runner.core.events import JobFinished, JobOutcome, JobStarted, LogChunk, PipelineFinished
from runner.core.filenames import NAME_MAX
from runner.report import FanOut, StopWhenClosed
from runner.report.console import PyciConsole
from runner.report.json_report import JsonReport, ReportError
from runner.report.live import LiveReporter
from runner.report.logfiles import JobLogError, LogFiles, log_file_name
from runner.report.plain import PlainReporter
from tests.processes import wait_for
from tests.schedule.conftest import Recorder

OK = JobOutcome("success", exit_code=0, duration=1.0)


class Raising:
    def handle(self, event) -> None:
        raise ValueError(f"cannot take {type(event).__name__}")


def test_fan_out_gives_every_reporter_the_event_then_raises_the_first_failure():
    first, second = Recorder(), Recorder()
    fan = FanOut([first, Raising(), second, Raising()])
    with pytest.raises(ValueError, match="cannot take JobStarted"):
        fan.handle(JobStarted("a", "build"))
    assert first.of(JobStarted) == second.of(JobStarted) == [JobStarted("a", "build")]


def test_a_closed_pipe_is_reported_once_and_later_events_are_dropped():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone, as `head -1` does
    stream = os.fdopen(write_end, "w")
    closed: list[str] = []
    reporter = StopWhenClosed(PlainReporter(stream), lambda: closed.append("closed"))
    reporter.handle(JobStarted("a", "build"))
    reporter.handle(LogChunk("a", "more\n"))
    assert closed == ["closed"]
    assert reporter.closed
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, write_end)  # what run.py does too: the buffered rest can be flushed
    os.close(devnull)
    stream.close()


def test_other_write_errors_are_not_taken_for_a_closed_output():
    stream = open("/dev/full", "w")  # noqa: SIM115 - ENOSPC on every write: no reader gone
    reporter = StopWhenClosed(PlainReporter(stream), lambda: None)
    with pytest.raises(OSError, match="No space left on device"):
        reporter.handle(JobStarted("a", "build"))
    assert not reporter.closed
    with contextlib.suppress(OSError):  # the buffered line fails again; the file closes
        stream.close()


def test_a_log_on_a_full_disk_fails_that_job_at_every_event_until_it_ends(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / log_file_name("full")).symlink_to("/dev/full")  # every write: ENOSPC
    files = LogFiles(logs)
    files.handle(JobStarted("full", "build"))  # opened; nothing written yet
    with pytest.raises(JobLogError, match="No space left on device") as raised:
        files.handle(LogChunk("full", "a line\n"))
    assert raised.value.job == "full"
    with pytest.raises(JobLogError):
        files.handle(LogChunk("full", "the traceback of the failure\n"))
    files.handle(JobFinished("full", "build", OK))  # the job's end: said already
    files.handle(JobStarted("fine", "build"))  # other jobs' logs carry on
    files.handle(LogChunk("fine", "fine\n"))
    files.handle(JobFinished("fine", "build", OK))
    assert (logs / "fine.log").read_text() == "fine\n--- job succeeded in 1.00s\n"


def test_log_file_names_of_long_strange_names_fit_and_stay_distinct():
    base = "deploy: [eu-west, ✓] ü/'x' " + "y" * 300
    names = [base[:255], base[:254] + "z", "a" * 255, "a" * 254 + "b", "é" * 255]
    files = [log_file_name(name) for name in names]
    assert len(set(files)) == len(names)
    for file in files:
        assert len(file.encode()) <= NAME_MAX
        assert "/" not in file and not file.startswith(".")
        assert file.isascii()
    assert log_file_name("build") == "build.log"


def test_a_live_view_whose_output_went_away_says_so_at_the_next_event():
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    console = PyciConsole(file=stream, width=80, force_terminal=True)
    view = LiveReporter(console, [("a", "build")], refresh_per_second=50)
    closed: list[str] = []
    reporter = StopWhenClosed(view, lambda: closed.append("closed"))
    with view:
        os.close(read_end)  # the reader goes while the view draws
        assert wait_for(lambda: view.output_error is not None)
        reporter.handle(JobStarted("a", "build"))
        reporter.handle(LogChunk("a", "later\n"))
    assert closed == ["closed"]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, write_end)
    os.close(devnull)
    stream.close()


def test_a_report_that_cannot_be_written_is_one_line_for_the_user(tmp_path: Path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the report's directory should be")
    report = JsonReport(blocked / "report.json", [("a", "build")], None)
    with pytest.raises(ReportError, match=f"cannot write the report {blocked}/report.json: "):
        report.handle(PipelineFinished("success", 1.0, {"a": OK}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]
