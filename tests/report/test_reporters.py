"""Reporters fold events into their output; rendered to a StringIO console and compared."""

from __future__ import annotations

import io
import json
import threading
import xml.etree.ElementTree as ET

from processes import wait_for
from rich.console import Console

from runner.core.events import (
    JobFinished,
    JobOutcome,
    JobQueued,
    JobStarted,
    LogChunk,
    PipelineFinished,
    SectionStarted,
)
from runner.report import FanOut
from runner.report.json_report import JsonReport
from runner.report.junit import JunitReport
from runner.report.live import LiveReporter, render_jobs, render_view
from runner.report.logfiles import LogFiles, log_file_name, log_path
from runner.report.plain import PlainReporter
from runner.report.state import RunState
from runner.report.summary import print_summary

JOBS = [("compile", "build"), ("unit", "test"), ("lint", "test"), ("deploy", "deploy")]
OK = JobOutcome("success", exit_code=0, duration=1.5)
LINT_FAILED = JobOutcome(
    "failed", exit_code=3, failure_reason="script_failure", allowed_failure=True, duration=0.25
)
UNIT_FAILED = JobOutcome("failed", exit_code=1, failure_reason="script_failure", duration=2.0)
SKIPPED = JobOutcome("skipped", message="an earlier job failed")
# what the build emits: GitLab's trace, with section markers and colours
STEP_START = (
    'section_start:1700000000:step_script\r\x1b[0K\x1b[36;1mExecuting "step_script"\x1b[0;m\n'
)
STEP_END = "section_end:1700000000:step_script\r\x1b[0K"


def console(width: int = 100) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, color_system=None, force_terminal=False), out


def render(renderable, width: int = 100) -> str:
    con, out = console(width)
    con.print(renderable)
    return out.getvalue()


def pipeline_events():
    return [
        JobQueued("compile", "build"),
        JobStarted("compile", "build"),
        SectionStarted("compile", "step_script", "Executing step_script"),
        LogChunk("compile", STEP_START + "\x1b[32;1m$ make\x1b[0;m\ncompiling...\nwrote bin/ap"),
        LogChunk("compile", "p\n" + STEP_END),
        JobFinished("compile", "build", OK),
        JobStarted("unit", "test"),
        JobStarted("lint", "test"),
        LogChunk("lint", "style problem\n"),
        LogChunk("unit", "1 test failed\n"),
        JobFinished("lint", "test", LINT_FAILED),
        JobFinished("unit", "test", UNIT_FAILED),
        JobFinished("deploy", "deploy", SKIPPED),
        PipelineFinished(
            "failed",
            4.0,
            {"compile": OK, "unit": UNIT_FAILED, "lint": LINT_FAILED, "deploy": SKIPPED},
        ),
    ]


def test_run_state_shows_the_latest_complete_line_of_a_running_job():
    clock = iter([0.0, 10.0, 12.5, 13.0]).__next__
    state = RunState(JOBS, clock=clock)
    state.apply(JobStarted("compile", "build"))
    state.apply(LogChunk("compile", "first\nsecond\n" + STEP_END))
    now, views = state.snapshot()
    compile_view = views[0]
    assert compile_view.status == "running"
    assert compile_view.last_line == "second"
    state.apply(LogChunk("compile", "\ndownloading 10%\rdownloading 20%"))
    assert state.snapshot()[1][0].last_line == "downloading 20%"
    assert compile_view.elapsed(now) == 2.5
    assert [v.status for v in views[1:]] == ["created"] * 3


def test_live_view_has_a_line_per_job_with_status_stage_time_and_output():
    clock = iter([0.0, 98.0, 100.0, 103.0]).__next__
    state = RunState(JOBS, clock=clock)
    state.apply(JobStarted("compile", "build"))
    state.apply(JobStarted("unit", "test"))
    state.apply(LogChunk("unit", "running test_parse\n"))
    state.apply(JobFinished("compile", "build", OK))
    state.apply(JobFinished("deploy", "deploy", SKIPPED))
    state.apply(JobFinished("lint", "test", JobOutcome("canceled", message="canceled")))
    now, views = state.snapshot()
    lines = render(render_jobs(views, now, 100)).splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["✔", "success", "compile", "build", "1.50s"]
    assert lines[1].split()[:5] == ["▶", "running", "unit", "test", "3.00s"]
    assert lines[1].rstrip().endswith("running test_parse")
    assert lines[2].split() == ["⊘", "canceled", "lint", "test", "canceled"]  # no time: never ran
    assert "skipped" in lines[3] and "an earlier job failed" in lines[3]


def test_live_view_shows_brackets_in_names_and_output_as_they_are():
    """Job names ("build: [linux, amd64]") and output ("[/]", "[bold]") are no rich markup."""
    jobs = [("build: [linux, amd64]", "build")]
    state = RunState(jobs, clock=iter([0.0, 1.0, 2.0]).__next__)
    state.apply(JobStarted("build: [linux, amd64]", "build"))
    state.apply(LogChunk("build: [linux, amd64]", "[bold]compiling[/] [/]\n"))
    now, views = state.snapshot()
    line = render(render_jobs(views, now, 120)).splitlines()[0]
    assert "build: [linux, amd64]" in line and "[bold]compiling[/] [/]" in line


def test_live_reporter_runs_and_leaves_no_thread():
    out = io.StringIO()
    con = Console(file=out, width=100, force_terminal=True, color_system=None)
    before = threading.active_count()
    with LiveReporter(con, JOBS, refresh_per_second=50) as live:
        for event in pipeline_events()[:4]:
            live.handle(event)
        # the view's own thread refreshes: the latest output shows, even unfinished
        assert wait_for(lambda: "wrote bin/ap" in out.getvalue(), timeout=30)
        for event in pipeline_events()[4:]:
            live.handle(event)
    assert threading.active_count() == before
    assert live.state.finished is not None and live.state.finished.status == "failed"


def test_plain_lines_are_prefixed_and_never_split_mid_line():
    out = io.StringIO()
    reporter = PlainReporter(out)
    for event in pipeline_events():
        reporter.handle(event)
    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        "[compile] --- job started (stage build)",
        '[compile] Executing "step_script"',
        "[compile] $ make",
        "[compile] compiling...",
        "[compile] wrote bin/app",
    ]
    assert "[compile] --- job succeeded in 1.50s" in lines
    assert "[lint] --- job failed in 0.25s: exit code 3 (allowed to fail)" in lines
    assert "[unit] --- job failed in 2.00s: exit code 1" in lines
    assert "[deploy] --- job skipped: an earlier job failed" in lines
    assert all(line.startswith("[") for line in lines)
    assert "\x1b" not in out.getvalue() and "section_" not in out.getvalue()


def test_plain_keeps_colours_when_asked():
    out = io.StringIO()
    reporter = PlainReporter(out, colors=True)
    reporter.handle(LogChunk("a", STEP_START + "\x1b[31mred\x1b[0m\n" + STEP_END))
    assert out.getvalue().splitlines() == [
        '[a] \x1b[36;1mExecuting "step_script"\x1b[0;m',
        "[a] \x1b[31mred\x1b[0m",
    ]


def test_plain_flushes_a_last_line_without_newline_when_the_job_ends():
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.handle(LogChunk("a", "no newline"))
    assert out.getvalue() == ""
    reporter.handle(JobFinished("a", "build", OK))
    assert out.getvalue().splitlines()[0] == "[a] no newline"


def test_fan_out_from_many_threads_keeps_lines_whole():
    out = io.StringIO()
    fan = FanOut([PlainReporter(out)])

    def produce(job: str) -> None:
        for i in range(200):
            fan.handle(LogChunk(job, f"line {i} of "))
            fan.handle(LogChunk(job, f"{job}\n"))

    threads = [threading.Thread(target=produce, args=(f"job{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 800
    for line in lines:
        job = line[1 : line.index("]")]
        assert line.endswith(f" of {job}")


def test_log_files_hold_the_whole_job_including_retries(tmp_path):
    logs = LogFiles(tmp_path / "logs")
    for event in [
        JobStarted("flaky", "test", 1),
        SectionStarted("flaky", "step_script", "Executing step_script"),
        LogChunk("flaky", STEP_START + "try one\n" + STEP_END),
        JobStarted("flaky", "test", 2),
        LogChunk("flaky", "try two\n"),
        JobFinished("flaky", "test", OK),
    ]:
        logs.handle(event)
    text = (tmp_path / "logs" / "flaky.log").read_text()
    assert text.splitlines() == [
        'Executing "step_script"',
        "try one",
        "",
        "=== attempt 2 ===",
        "try two",
        "--- job succeeded in 1.50s",
    ]


def test_log_file_names_are_safe_and_distinct():
    names = ["test: [3.11, a]", "test: [3.11; a]", "build", "../evil"]
    files = [log_file_name(n) for n in names]
    assert files[2] == "build.log"
    assert len(set(files)) == 4
    assert all("/" not in f and not f.startswith(".") for f in files)


def test_json_report(tmp_path):
    logs = LogFiles(tmp_path / "logs")
    report = tmp_path / "out" / "report.json"
    fan = FanOut([logs, JsonReport(report, JOBS, tmp_path / "logs")])
    for event in pipeline_events():
        fan.handle(event)
    document = json.loads(report.read_text())
    assert document["status"] == "failed"
    by_name = {job["name"]: job for job in document["jobs"]}
    assert [job["name"] for job in document["jobs"]] == [name for name, _ in JOBS]
    assert by_name["lint"]["allowed_failure"] is True
    assert by_name["lint"]["exit_code"] == 3
    assert by_name["deploy"]["status"] == "skipped"
    assert by_name["deploy"]["log"] is None
    assert by_name["unit"]["log"] == str(log_path(tmp_path / "logs", "unit"))


def test_junit_report(tmp_path):
    logs = LogFiles(tmp_path / "logs")
    report = tmp_path / "junit.xml"
    fan = FanOut([logs, JunitReport(report, JOBS, tmp_path / "logs")])
    for event in pipeline_events():
        fan.handle(event)
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["compile"].get("classname") == "build"
    assert list(cases["compile"]) == []
    assert cases["unit"].find("failure").get("message") == "job failed in 2.00s: exit code 1"
    assert "1 test failed" in cases["unit"].find("system-out").text
    assert cases["deploy"].find("skipped") is not None


def test_summary_table_and_status_line():
    con, out = console(120)
    rows = [
        ("compile", "build", OK),
        ("lint", "test", LINT_FAILED),
        ("deploy", "deploy", SKIPPED),
        ("e2e", "test", JobOutcome("canceled", failure_reason="canceled", message="canceled")),
        (
            "slow",
            "test",
            JobOutcome("failed", failure_reason="job_execution_timeout", message="took over 1s"),
        ),
    ]
    print_summary(con, rows, "success_with_warnings", 65.0)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert lines[0].split()[:7] == ["job", "stage", "status", "duration", "exit", "code", "allowed"]
    assert lines[1].split() == ["compile", "build", "success", "1.50s", "0"]
    assert lines[2].split()[:7] == ["lint", "test", "failed", "(allowed)", "0.25s", "3", "yes"]
    assert lines[3].split()[:3] == ["deploy", "deploy", "skipped"]
    assert "an earlier job failed" in lines[3]
    assert lines[4].split() == ["e2e", "test", "canceled", "canceled"]
    assert lines[5].rstrip().endswith("job_execution_timeout; took over 1s")
    assert lines[-1] == "Pipeline passed with warnings in 1m05s"


def test_live_view_keeps_running_and_failed_jobs_in_sight_when_the_terminal_is_short():
    state = RunState([(f"job-{i:02d}", "test") for i in range(30)], clock=lambda: 5.0)
    state.apply(JobFinished("job-03", "test", UNIT_FAILED))
    state.apply(JobStarted("job-20", "test"))
    state.apply(JobStarted("job-29", "test"))
    for i in range(5, 10):
        state.apply(JobFinished(f"job-{i:02d}", "test", OK))
    now, views = state.snapshot()
    text = render(render_view(views, now, 12.0, 100, 8, "demo pipeline"))
    lines = text.splitlines()
    assert lines[0] == "demo pipeline"
    shown = [line.split()[2] for line in lines[1:-1]]
    assert shown == ["job-00", "job-01", "job-03", "job-20", "job-29"]
    assert lines[-1] == (
        "12.00s  2 running · 22 waiting · 5 passed · 1 failed  (+25 jobs not shown)"
    )


def test_live_state_nests_a_child_pipeline_under_its_bridge():
    from runner.core.events import ChildPipelineCreated
    from runner.report.state import RunState

    state = RunState([("build", "build"), ("bridge", "test"), ("deploy", "deploy")])
    state.apply(ChildPipelineCreated("bridge", (("bridge > a", "test"), ("bridge > b", "test"))))
    state.apply(ChildPipelineCreated("bridge > a", (("bridge > a > x", "test"),)))
    _, views = state.snapshot()
    assert [view.name for view in views] == [
        "build",
        "bridge",
        "bridge > a",
        "bridge > a > x",
        "bridge > b",
        "deploy",
    ]
