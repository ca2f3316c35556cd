"""`pyci run`: run the pipeline (or named jobs) here, with a live view or plain lines.

The top level reads as the list of steps: load the pipeline, choose the jobs, wire the
reporters, run the scheduler under a Ctrl-C handler, print the summary, return the exit code
(0 passed, also with warnings; 1 failed or an invalid configuration; 2 usage error; 130 / 143 / 129
canceled by SIGINT / SIGTERM / SIGHUP; 141 when the reader of the output went away, as a
program killed by SIGPIPE would).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.commands.common import add_project_options, parse_variables, project_options
from runner.core.errors import UsageError
from runner.executor_options import (
    add_executor_options,
    chosen_executor,
    executor_options,
)
from runner.schedule.interrupts import cancel_on_signals
from runner.state_dir import project_state_dir

# The scheduler, the reporters and the job shape are imported where they are used: a usage
# error is then reported before paying for them.
if TYPE_CHECKING:
    from rich.console import Console

    from runner.core.events import JobOutcome, Reporter
    from runner.core.jobspec import JobSpec
    from runner.debug_shell import HeldOutput
    from runner.pipeline import Pipeline
    from runner.project import ProjectOptions
    from runner.report.live import LiveReporter
    from runner.schedule.scheduler import JobRunner
    from runner.schedule.selection import Selection

OUTPUT_CLOSED_EXIT = 128 + signal.SIGPIPE  # 141, what a shell reports for `pyci run | head`


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the pipeline, or the named jobs",
        description="Run the pipeline here: every job, or only the named jobs (with --needs, "
        "also what they need). Exit 0 when it passed, 1 when it failed or the configuration "
        "is invalid, 2 on usage errors, 130 when interrupted (143 on SIGTERM, 129 on SIGHUP), 141 "
        "when the reader of its output went away.",
    )
    parser.add_argument("jobs", nargs="*", metavar="JOB", help="run only these jobs")
    parser.add_argument(
        "--needs", action="store_true", help="also run what the named jobs wait for"
    )
    parser.add_argument(
        "--stage", action="append", default=[], metavar="STAGE", help="run the jobs of STAGE"
    )
    parser.add_argument(
        "--manual", action="append", default=[], metavar="JOB", help="start manual job JOB"
    )
    add_project_options(parser)
    parser.add_argument(
        "--concurrency",
        "-j",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="run up to N jobs at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--shell-on-failure",
        action="store_true",
        help="when a job's script fails, open a shell in its container (stdin must be a "
        "terminal; implies --plain)",
    )
    parser.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    parser.add_argument(
        "--masked-variable",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="like --variable, but masked: its value never appears in any output",
    )
    parser.add_argument("--json-report", metavar="FILE", help="write a JSON report to FILE")
    parser.add_argument(
        "--junit-report", metavar="FILE", help="write a JUnit XML report of the jobs to FILE"
    )
    add_executor_options(parser)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace, opts: ProjectOptions | None = None) -> int:
    """`opts`: the project options made by the caller (`pyci reproduce`), else from `args`."""
    from executors.factory import executor_session

    check_arguments(args)
    try:
        # the fork server first, while pyci has one thread; then the jobs' checkout, on a
        # thread while the pipeline loads
        with (
            executor_session(chosen_executor(args)),
            checkout_while_loading(Path(args.directory).resolve()),
        ):
            return run_pipeline(args, opts)
    finally:
        # What the run shared between its jobs (the sources' snapshot and its mounts, pending
        # removals) ends with the run, not only at exit: pyci may run in-process.
        from runner.build.snapshot import release_all

        release_all()


def checkout_while_loading(directory: Path) -> contextlib.AbstractContextManager[None]:
    """runner.build.early_checkout's (the build modules are imported only by a run that
    gets this far)."""
    from runner.build.early_checkout import checkout_while_loading

    return checkout_while_loading(directory)


def run_pipeline(args: argparse.Namespace, opts: ProjectOptions | None = None) -> int:
    from runner.child_pipeline import ChildPipelines
    from runner.schedule.scheduler import Scheduler
    from runner.schedule.selection import select_jobs

    if opts is None:
        opts = run_options(args)  # one set of options (and settings variables) for the run
    pipeline = load(args, opts)
    if pipeline is None:
        return 0
    selection = select_jobs(
        pipeline.jobs,
        {job.name: job.reason for job in pipeline.excluded},
        names=args.jobs,
        stages=args.stage,
        manual=args.manual,
        with_needs=args.needs,
    )
    state_dir = project_state_dir(pipeline.project_dir)
    if selection.partial:
        say_earlier_artifacts(args, pipeline, selection.jobs, state_dir)
    listed = [(job.name, job.stage) for job in selection.jobs]
    # first signal (or the output gone): cancel; second: abort (docs/run.md, Ctrl-C)
    cancel, abort = threading.Event(), threading.Event()
    output = Output(args, listed, state_dir, pipeline.name, cancel)
    if output.view is not None:
        output.view.show_pipeline(view_header(pipeline, len(listed)), waiting_for_user(selection))
    run_job = ChildPipelines(
        opts,
        pipeline.facts,
        build_runner(pipeline.project_dir, state_dir, args, output, abort),
        output.reporter,
        state_dir,
        concurrency=args.concurrency,
        prepare=lambda job: mask_variables(job, parse_variables(args.masked_variable)),
    )
    scheduler = Scheduler(
        selection.jobs,
        run_job,
        output.reporter,
        concurrency=args.concurrency,
        played=selection.played,
        forced=selection.forced,
        pipeline=pipeline.jobs if selection.partial else None,
        cancel=cancel,
    )
    with cancel_on_signals(cancel, abort) as interrupts, output.running():
        result = scheduler.run()
    if output.closed.is_set():
        return OUTPUT_CLOSED_EXIT  # quietly: nobody reads a summary
    exit_code = interrupts.exit_code or result.exit_code
    from runner.report.failures import failure_tails, print_tails
    from runner.report.summary import print_summary

    outcomes = output.rows.with_outcomes(result.as_finished()).outcomes
    rows = [(name, stage, outcomes[name]) for name, stage in output.rows.jobs if name in outcomes]
    waiting = [job.name for job in selection.jobs if result.outcomes[job.name].status == "manual"]
    tails = failure_tails(rows, output.logs.logs_dir)
    console = output.console
    print_summary(console, rows, result.status, result.duration)
    if waiting:
        console.print(manual_hint(waiting), style="cyan", markup=False)
    print_tails(console, tails)
    return exit_code


def say_earlier_artifacts(
    args: argparse.Namespace, pipeline: Pipeline, jobs: tuple[JobSpec, ...], state_dir: Path
) -> None:
    """One line per job outside this run whose artifacts the run uses (or lacks)."""
    from runner.build.artifacts import ArtifactStore, pipeline_file_key
    from runner.schedule.earlier_artifacts import earlier_artifacts_notes

    key = pipeline_file_key(pipeline.project_dir, Path(args.directory).resolve() / args.file)
    store = ArtifactStore(state_dir, key)
    for note in earlier_artifacts_notes(store, jobs, pipeline.jobs, key):
        print(f"note: {note}", file=sys.stderr)


def view_header(pipeline: Pipeline, jobs: int) -> str:
    from runner.report.state import pipeline_header

    facts = pipeline.facts
    ref, sha = (facts.ref_name, facts.short_sha) if facts is not None else (None, None)
    file = pipeline.files[0] if pipeline.files else ".gitlab-ci.yml"
    return pipeline_header(pipeline.name, file, ref, sha, jobs)


def waiting_for_user(selection: Selection) -> list[str]:
    """The manual jobs of the run that the user did not start."""
    return [j.name for j in selection.jobs if j.when == "manual" and j.name not in selection.played]


def check_arguments(args: argparse.Namespace) -> None:
    if args.concurrency < 1:
        raise UsageError(f"--concurrency {args.concurrency}: must be at least 1")
    if args.shell_on_failure:
        args.plain = True  # the live view would draw over the shell


def load(args: argparse.Namespace, opts: ProjectOptions | None = None) -> Pipeline | None:
    """The planned pipeline, masked variables marked; None when GitLab would create none."""
    from runner.pipeline import NoPipeline, load_pipeline, report_ignored

    if opts is None:
        opts = run_options(args)
    masked = parse_variables(args.masked_variable)
    try:
        pipeline = load_pipeline(opts)
    except NoPipeline as exc:  # nothing ran, nothing failed
        print(f"no pipeline: {exc}", file=sys.stderr)
        return None
    report_ignored(pipeline, verbose=args.verbose)
    if masked:
        jobs = tuple(mask_variables(job, masked) for job in pipeline.jobs)
        pipeline = replace(pipeline, jobs=jobs)
    return pipeline


def run_options(args: argparse.Namespace) -> ProjectOptions:
    """The project and the variables of the command line, masked ones included."""
    opts = project_options(args)
    masked = parse_variables(args.masked_variable)
    check_maskable(masked)
    return replace(opts, variables={**opts.variables, **masked})


def make_console() -> Console:
    from runner.report.console import PyciConsole

    console = PyciConsole(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # a pipe or a file: keep summary rows on one line each
    return console


class Output:
    """The reporters of one run: log files, the live view or plain lines, the reports.

    When the reader of stdout goes away (`pyci run | head -1`), `closed` is set and `cancel`
    too: the run ends as a program killed by SIGPIPE would, but with its jobs wound down."""

    def __init__(
        self,
        args: argparse.Namespace,
        jobs: list[tuple[str, str]],
        state_dir: Path,
        title: str | None,
        cancel: threading.Event,
    ) -> None:
        from runner.report import FanOut, StopWhenClosed
        from runner.report.json_report import ChildRows
        from runner.report.logfiles import LogFiles
        from runner.report.plain import PlainReporter

        self.logs = LogFiles(state_dir / "logs")
        self.rows = ChildRows(jobs)  # the summary's rows: child pipelines under their bridge
        reporters: list[Reporter] = [self.logs, self.rows]  # the reports read finished logs
        self.view: LiveReporter | None = None
        self.console = make_console()  # what the live view and the summary draw on
        self.closed = threading.Event()
        self._cancel = cancel
        terminal = self.console.is_terminal
        if args.plain or not terminal:
            plain = PlainReporter(sys.stdout, colors=terminal)
            reporters.append(StopWhenClosed(plain, self._stdout_closed))
        else:
            from runner.report.live import LiveReporter

            self.view = LiveReporter(self.console, jobs, title=title)
            reporters.append(StopWhenClosed(self.view, self._stdout_closed))
        cwd = Path.cwd()
        if args.json_report:
            from runner.report.json_report import JsonReport

            path = cwd / args.json_report
            reporters.append(JsonReport(path, jobs, self.logs.logs_dir, title))
        if args.junit_report:
            from runner.report.junit import JunitReport

            reporters.append(JunitReport(cwd / args.junit_report, jobs, self.logs.logs_dir))
        self.reporter: Reporter = FanOut(reporters)
        self.held: HeldOutput | None = None
        if args.shell_on_failure:  # a job's shell may take the terminal: hold lines meanwhile
            from runner.debug_shell import HeldOutput

            self.held = HeldOutput(self.reporter)
            self.reporter = self.held

    def _stdout_closed(self) -> None:
        # What is still buffered for stdout, and whatever else is written to it later, goes
        # to /dev/null: flushing it cannot fail again, at exit or in the interpreter's teardown
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        self.closed.set()
        self._cancel.set()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """While the pipeline runs: the live view (on a terminal); log files closed after."""
        try:
            with self.view or contextlib.nullcontext():
                yield
        finally:
            self.logs.close()


def check_maskable(masked: dict[str, str]) -> None:
    """GitLab's rule for masked values: one line of at least 8 characters."""
    for key, value in masked.items():
        if len(value) < 8 or "\n" in value:
            raise UsageError(
                f"--masked-variable {key}: the value must be a single line of at least 8 "
                "characters to be masked"
            )


def mask_variables(job: JobSpec, masked: dict[str, str]) -> JobSpec:
    """Mark the job's definitions of the masked keys (the build masks their values)."""
    variables = tuple(
        replace(var, masked=True) if var.key in masked else var for var in job.variables
    )
    return replace(job, variables=variables)


def build_runner(
    project_dir: Path,
    state_dir: Path,
    args: argparse.Namespace,
    output: Output,
    abort: threading.Event,
) -> JobRunner:
    """One fresh executor and one build per attempt of a job; `abort` (a second Ctrl-C)
    stops canceled jobs' after_script too."""
    from executors.factory import create_executor
    from runner.build.artifacts import pipeline_file_key
    from runner.build.build import run_build
    from runner.build.context import BuildContext
    from runner.debug_shell import ShellOnFailure

    kind = chosen_executor(args)
    options = executor_options(args, state_dir)
    pipeline_file = pipeline_file_key(project_dir, Path(args.directory).resolve() / args.file)

    def run_job(
        job: JobSpec, attempt: int, upstream: tuple[str, ...], cancel: threading.Event
    ) -> JobOutcome:
        executor = create_executor(kind, options)
        if args.shell_on_failure:
            executor = ShellOnFailure(executor, output.held)
        context = BuildContext(
            project_dir=project_dir,
            state_dir=state_dir,
            upstream=upstream,
            attempt=attempt,
            pipeline_file=pipeline_file,
        )
        return run_build(job, executor, context, output.reporter, cancel, abort)

    return run_job


def manual_hint(waiting: list[str]) -> str:
    names = ", ".join(waiting)
    return f"manual jobs not started: {names} (start one with --manual JOB, or name it)"
