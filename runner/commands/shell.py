"""`pyci shell JOB`: an interactive shell where JOB's script would run.

The job is prepared as `pyci run` would prepare it (image, variables, services, its copy of the
repository, caches pulled, artifacts and dotenv variables of earlier runs), its `before_script`
runs, and then, instead of its `script:`, a shell (or the command after `--`) takes over on a
pseudo-terminal, with the job's variables (file variables written), directory and whatever
`before_script` set up. With `--executor container` the shell is in the job's container; with
`--executor shell` it is a host shell in the job's copy of the repository.
Nothing is saved back: no artifacts, no cache, no after_script. Exit code: the shell's (or the
failed `before_script`'s).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from executors.base import (
    BuildDirs,
    ExecResult,
    Executor,
    ExecutorWrapper,
    JobLog,
    StageCommand,
)
from runner.commands.common import add_project_options, project_options
from runner.core.errors import UsageError
from runner.core.jobspec import ArtifactsSpec, JobSpec
from runner.executor_options import add_executor_options, chosen_executor, executor_options
from runner.state_dir import project_state_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shell",
        help="open a shell in a job's container",
        description="Prepare JOB as `pyci run` would (image, variables, services, repository, "
        "caches, artifacts and dotenv of earlier runs), run its before_script, and open a shell "
        "where its script would run; with `-- COMMAND`, run that instead. Options may come "
        "before or after JOB; a COMMAND is what follows `--` (or JOB, when the word after JOB "
        "is not an option). Exits with the shell's code.",
    )
    parser.add_argument("job", metavar="JOB", help="the job whose container to enter")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        action=_OptionsThenCommand,
        metavar="-- COMMAND",
        help="run this, not a shell",
    )
    add_project_options(parser)
    add_executor_options(parser)
    parser.set_defaults(handler=shell_command)


def _options_parser() -> argparse.ArgumentParser:
    """The options of `pyci shell`, for the words after JOB."""
    parser = argparse.ArgumentParser(prog="pyci shell JOB", add_help=False)
    add_project_options(parser)
    add_executor_options(parser)
    return parser


class _OptionsThenCommand(argparse.Action):
    """Everything after JOB: options up to `--`, then the command. argparse alone cannot say
    this: a `REMAINDER` would take `-f x.yml` as the command, and a `*` positional is used up
    (empty) by JOB, so that a command after `--` is refused. A first word that is not an
    option starts the command (`pyci shell unit ls -la`), as in `docker exec`."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        words = list(values or ())
        if words and not words[0].startswith("-"):
            options, command = [], words
        elif "--" in words:
            cut = words.index("--")
            options, command = words[:cut], words[cut + 1 :]
        else:
            options, command = words, []
        # options already given before JOB stay unless repeated (appended, for --variable)
        _options_parser().parse_args(options, namespace)
        setattr(namespace, self.dest, command)


def shell_command(args: argparse.Namespace) -> int:
    from executors.factory import executor_session

    kind = chosen_executor(args)
    with executor_session(kind), _cleanup_on_termination():
        return open_shell(args, kind, tuple(args.command))


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


def open_shell(args: argparse.Namespace, kind: str, command: tuple[str, ...]) -> int:
    from executors.factory import create_executor
    from runner.build.artifacts import pipeline_file_key
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
    state_dir = project_state_dir(pipeline.project_dir)
    executor = ShellInstead(create_executor(kind, executor_options(args, state_dir)))
    opts = project_options(args)
    context = BuildContext(
        project_dir=pipeline.project_dir,
        state_dir=state_dir,
        upstream=JobGraph(pipeline.jobs).artifact_sources(job),
        pipeline_file=pipeline_file_key(pipeline.project_dir, opts.file),
        debug_shell=command,
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


class ShellInstead(ExecutorWrapper):
    """An executor whose `step_script` stage (`scripts.debug_shell`: before_script, then a
    shell) runs on this terminal rather than into the job log."""

    SCRIPT_NAME = "debug_shell.sh"

    def __init__(self, inner: Executor, stdin: int = 0, stdout: int = 1):
        super().__init__(inner)
        self.exit_code: int | None = None
        self._stdin, self._stdout = stdin, stdout
        self._scratch: Path | None = None

    def prepare(self, job: JobSpec, dirs: BuildDirs, log: JobLog) -> None:
        self._scratch = dirs.scratch
        self.inner.prepare(job, dirs, log)

    def run(self, cmd: StageCommand, log: JobLog, cancel: threading.Event) -> ExecResult:
        if cmd.stage != "step_script":
            return self.inner.run(cmd, log, cancel)
        from runner.build.scripts import SHELL_STARTED
        from runner.debug_shell import run_on_terminal

        assert self._scratch is not None
        # the job sees its scratch dir at `<CI_PROJECT_DIR>.tmp`, as every stage script
        self._scratch.mkdir(parents=True, exist_ok=True)
        script = self._scratch / self.SCRIPT_NAME
        script.write_text(cmd.script)
        in_job = f"{self.inner.project_dir_in_job()}.tmp/{self.SCRIPT_NAME}"
        sys.stderr.flush()
        argv = (self.shell_name, in_job)
        code = run_on_terminal(self.inner, argv, self._stdin, self._stdout, cancel)
        if not (self._scratch / SHELL_STARTED).exists():
            log.write(f"pyci shell: before_script failed (exit code {code}), no shell opened\n")
        self.exit_code = code
        return ExecResult(code)
