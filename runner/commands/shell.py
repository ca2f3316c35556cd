"""`pyci shell JOB`: an interactive shell where JOB's script would run.

The job is prepared as `pyci run` would prepare it (image, variables, services, its copy of the
repository, caches pulled, artifacts of earlier runs downloaded), and then, instead of its
script, a login shell (or the command after `--`) runs in its container on a pseudo-terminal.
Nothing is saved back: no artifacts, no cache, no after_script. Exit code: the shell's.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace

from executors.base import BuildDirs, ExecResult, Executor, JobLog, StageCommand
from runner.commands.common import add_project_options, project_options
from runner.errors import UsageError
from runner.executor_options import add_executor_options, chosen_executor, executor_options
from runner.jobspec import ArtifactsSpec, JobSpec

STATE_DIR_NAME = ".pyci"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shell",
        help="open a shell in a job's container",
        description="Prepare JOB as `pyci run` would (image, variables, services, repository, "
        "caches, artifacts of earlier runs) and open a shell in its container instead of "
        "running its script; with `-- COMMAND`, run that instead. Exits with the shell's code.",
    )
    parser.add_argument("job", metavar="JOB", help="the job whose container to enter")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="run this, not a shell"
    )
    add_project_options(parser)
    add_executor_options(parser)
    parser.set_defaults(handler=shell_command, config_error_exit=2)


def shell_command(args: argparse.Namespace) -> int:
    from runner.commands.run import executor_process

    command = tuple(args.command[1:] if args.command[:1] == ["--"] else args.command)
    kind = chosen_executor(args)
    if kind != "container":
        raise UsageError(f"pyci shell: needs the container executor, not {kind}")
    with executor_process(kind), _cleanup_on_termination():
        return open_shell(args, command)


@contextlib.contextmanager
def _cleanup_on_termination() -> Iterator[None]:
    """SIGTERM, or SIGHUP when the terminal goes away, ends `pyci shell` through its cleanup
    (the container killed, the job's overlay of the sources unmounted, its dirs removed)
    instead of the default action, which would leave all of that behind.

    The exception surfaces in the main thread, which waits for the shell's container; later
    signals are ignored so that they cannot cut the cleanup short."""

    def on_signal(signum: int, frame: object) -> None:
        for sig in handled:
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    handled = (signal.SIGTERM, signal.SIGHUP)
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def open_shell(args: argparse.Namespace, command: tuple[str, ...]) -> int:
    from executors.factory import create_executor
    from runner.build.build import run_build
    from runner.build.context import BuildContext
    from runner.pipeline import NoPipeline, load_pipeline
    from runner.report.plain import PlainReporter
    from runner.schedule.graph import JobGraph

    try:
        pipeline = load_pipeline(project_options(args))
    except NoPipeline as exc:
        raise UsageError(f"pyci shell {args.job}: no pipeline ({exc})") from None
    job = next((j for j in pipeline.jobs if j.name == args.job), None)
    if job is None:
        names = ", ".join(j.name for j in pipeline.jobs)
        raise UsageError(f"pyci shell {args.job}: no such job in the pipeline (jobs: {names})")
    state_dir = pipeline.project_dir / STATE_DIR_NAME
    inner = create_executor("container", executor_options(args, state_dir))
    executor = ShellInstead(inner, command)
    context = BuildContext(
        project_dir=pipeline.project_dir,
        state_dir=state_dir,
        upstream=JobGraph(pipeline.jobs).artifact_sources(job),
    )
    outcome = run_build(
        nothing_saved(job), executor, context, PlainReporter(sys.stderr), threading.Event()
    )
    if executor.exit_code is None:  # the job never got as far as the shell
        print(f"error: pyci shell {job.name}: {outcome.message or 'preparing failed'}",
              file=sys.stderr)  # fmt: skip
        return 1
    return executor.exit_code


def nothing_saved(job: JobSpec) -> JobSpec:
    """The job without what would write back: artifacts, cache pushes, after_script."""
    caches = tuple(replace(cache, policy="pull") for cache in job.cache)
    return replace(job, artifacts=ArtifactsSpec(), cache=caches, after_script=())


class ShellInstead:
    """An executor whose `step_script` stage is an interactive shell on this terminal."""

    def __init__(self, inner: Executor, command: tuple[str, ...]):
        self.inner = inner
        self.name = inner.name
        self.command = command
        self.exit_code: int | None = None

    @property
    def shell_name(self) -> str:
        return getattr(self.inner, "shell_name", "sh")

    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None:
        self.inner.prepare(job, dirs, log)

    def project_dir_in_job(self) -> str:
        return self.inner.project_dir_in_job()

    def builds_dir_in_job(self) -> str:
        return getattr(self.inner, "builds_dir_in_job", lambda: "/builds")()

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult:
        if cmd.stage != "step_script":
            return self.inner.run(cmd, log, cancel)
        from runner.debug_shell import run_on_terminal

        sys.stderr.flush()
        self.exit_code = run_on_terminal(self.inner, self.command)  # type: ignore[arg-type]
        return ExecResult(self.exit_code)

    def cleanup(self) -> None:
        self.inner.cleanup()
