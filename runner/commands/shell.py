"""`pyci shell JOB`: an interactive shell where JOB's script would run.

The job is prepared as `pyci run` would prepare it (image, variables, services, its copy of the
repository, caches pulled, artifacts of earlier runs downloaded), and then, instead of its
script, a login shell (or the command after `--`) runs in its container on a pseudo-terminal.
Nothing is saved back: no artifacts, no cache, no after_script. Exit code: the shell's.
"""

from __future__ import annotations

import argparse
import sys
import threading
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
    with executor_process(kind):
        return open_shell(args, command)


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
