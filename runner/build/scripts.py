"""The two user-script stages of a job as shell text: `step_script` and `after_script`.

As gitlab-runner writes them: every job variable exported (file variables written to the job's
temp dir first), `cd` into the project, then each command echoed and run. `before_script` and
`script` share one shell (so `cd` and variables carry over, and the first failure stops it);
`after_script` gets a fresh shell of its own that also knows `CI_JOB_STATUS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from runner.build.shellwriter import ShellWriter, quote

# `debug_shell` creates this file in the job's temp dir once before_script succeeded
SHELL_STARTED = "pyci-shell-started"


@dataclass(frozen=True)
class ScriptVariable:
    """A variable as the script exports it: value already expanded."""

    key: str
    value: str
    file: bool = False


@dataclass(frozen=True)
class ScriptEnvironment:
    """What every stage script starts with: where the project is and what to export."""

    project_dir: str  # CI_PROJECT_DIR as the job sees it
    tmp_dir: str  # where file variables are written, as the job sees it
    variables: tuple[ScriptVariable, ...] = ()
    shell: str = "bash"


def _prologue(writer: ShellWriter, env: ScriptEnvironment) -> None:
    for var in env.variables:
        if var.file:
            writer.export_file(var.key, var.value, env.tmp_dir)
        else:
            writer.export(var.key, var.value)
    writer.cd(env.project_dir)


def step_script(env: ScriptEnvironment, before_script: Sequence[str], script: Sequence[str]) -> str:
    writer = ShellWriter(env.shell)
    _prologue(writer, env)
    for command in (*before_script, *script):
        writer.user_command(command)
    return writer.finish()


def debug_shell(
    env: ScriptEnvironment,
    before_script: Sequence[str],
    command: Sequence[str] = (),
) -> str:
    """`pyci shell`: the job's `step_script` up to its `script:`, then an interactive shell
    (or `command`) in its place, which inherits the variables (file variables written, dotenv
    of upstream jobs), the directory and what `before_script` set up. Just before the shell
    takes over, `SHELL_STARTED` is created in the job's temp dir: the caller tells a failed
    `before_script` from a shell that exited non-zero by its absence."""
    writer = ShellWriter(env.shell)
    _prologue(writer, env)
    for command_line in before_script:
        writer.user_command(command_line)
    writer.line(f": > {quote(env.tmp_dir + '/' + SHELL_STARTED)}")
    # interactive, not a login shell: a login shell's profile would reset PATH and others
    return writer.finish(tuple(command) or (env.shell, "-i"))


def after_script(env: ScriptEnvironment, commands: Sequence[str], job_status: str) -> str:
    """`job_status` is GitLab's `CI_JOB_STATUS`: success, failed, canceled or timedout."""
    writer = ShellWriter(env.shell)
    status = ScriptVariable("CI_JOB_STATUS", job_status)
    kept = tuple(var for var in env.variables if var.key != status.key)
    _prologue(writer, replace(env, variables=(*kept, status)))
    writer.notice("Running after script...")
    for command in commands:
        writer.user_command(command)
    return writer.finish()
