"""`pyci shell JOB`: before_script runs first, with file and dotenv variables in place; the
project options may follow JOB; `--executor shell` opens a host shell in the job's copy."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from executors.shell import ShellExecutor
from runner.build.build import run_build
from runner.build.context import BuildContext
from runner.cli import build_parser
from runner.commands.shell import ShellInstead
from runner.core.jobspec import JobSpec, Variable
from tests.build.conftest import Recorder
from tests.cli import run_pyci as pyci
from tests.container.test_container_cli import drive_on_pty
from tests.daily.conftest import make_project

NEVER_TYPED = (b"\0",)  # a marker that never appears: the command runs without typing

PIPELINE = """
stages: [build, test]
variables:
  GREETING: hello
build:
  stage: build
  script:
    - echo "FROM_DOTENV=dotenv-value" > build.env
  artifacts:
    reports:
      dotenv: build.env
test:
  stage: test
  before_script:
    - export SET_BY_BEFORE_SCRIPT=yes
    - cd sub
  script:
    - echo "the script must not run"
"""


def test_parser_takes_options_after_the_job_and_the_command_after_the_dashes():
    parser = build_parser("shell")
    args = parser.parse_args(
        ["shell", "-C", "x", "unit", "-f", "ci.yml", "-v", "A=1", "--", "ls", "-f", "-v"]
    )
    assert (args.job, args.directory, args.file) == ("unit", "x", "ci.yml")
    assert args.variable == ["A=1"]
    assert args.command == ["ls", "-f", "-v"]  # after `--`: the command's own options

    args = parser.parse_args(["shell", "unit", "-f", "ci.yml", "--executor", "shell"])
    assert (args.file, args.executor, args.command) == ("ci.yml", "shell", [])

    args = parser.parse_args(["shell", "-v", "A=1", "unit", "-v", "B=2"])
    assert args.variable == ["A=1", "B=2"]  # appended to, not replaced

    args = parser.parse_args(["shell", "unit", "ls", "-f", "x"])  # as `docker exec` reads it
    assert (args.file, args.command) == (".gitlab-ci.yml", ["ls", "-f", "x"])


def test_shell_executor_runs_before_script_with_dotenv_then_the_command(tmp_path, env):
    repo = make_project(tmp_path, {"ci.yml": PIPELINE, "sub/keep": ""})
    first = pyci(repo, env, "run", "--plain", "--executor", "shell", "-f", "ci.yml", "build")
    assert first.returncode == 0, first.stdout + first.stderr
    code, output = drive_on_pty(
        ["shell", "test", "-f", "ci.yml", "--executor", "shell", "--",
         "sh", "-c", 'echo "seen: $GREETING $FROM_DOTENV $SET_BY_BEFORE_SCRIPT $PWD"; exit 7'],
        repo, env, NEVER_TYPED, b"",
    )  # fmt: skip
    assert code == 7, output
    seen = next(line for line in output.splitlines() if line.startswith("seen: "))
    greeting, dotenv, before, cwd = seen.split()[1:]
    assert (greeting, dotenv, before) == ("hello", "dotenv-value", "yes")
    builds = Path(env["PYCI_BUILDS_DIR"])
    assert cwd.startswith(str(builds)) and cwd.endswith("/demo/sub")  # the job's copy, not repo
    assert "the script must not run" not in output


def test_shell_executor_opens_an_interactive_host_shell(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": PIPELINE, "sub/keep": ""})
    code, output = drive_on_pty(
        ["shell", "test", "--executor", "shell"],
        repo,
        env,
        (b'"step_script"', b"$ cd sub", b"sub"),
        b'test -t 0 && echo "tty:$SET_BY_BEFORE_SCRIPT:$(basename $PWD)"; exit 3\n',
    )
    assert code == 3, output
    assert "tty:yes:sub" in output


def test_a_failed_before_script_opens_no_shell_and_says_so(tmp_path, env):
    broken = PIPELINE.replace("cd sub", "cd missing-dir")
    repo = make_project(tmp_path, {".gitlab-ci.yml": broken})
    code, output = drive_on_pty(
        ["shell", "test", "--executor", "shell", "--", "echo", "shell-ran"],
        repo, env, NEVER_TYPED, b"",
    )  # fmt: skip
    assert code == 1, output
    assert "pyci shell: before_script failed (exit code 1), no shell opened" in output
    assert "shell-ran" not in output


def test_file_variables_are_files_in_the_debug_shell(tmp_path):
    """A file variable (as GitLab's CI/CD settings hold kubeconfigs) is a path to a file with
    the value, as in the job; the build writes it before the shell takes over."""
    repo = make_project(tmp_path, {".gitlab-ci.yml": "x:\n  script: [true]\n"})
    job = JobSpec(
        name="deploy",
        stage="test",
        stage_index=0,
        script=("echo never",),
        variables=(Variable("KUBECONFIG", "apiVersion: v1\n", file=True),),
    )
    output = tmp_path / "terminal.out"
    read_end = os.open(os.devnull, os.O_RDONLY)
    write_end = os.open(output, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        executor = ShellInstead(ShellExecutor(), stdin=read_end, stdout=write_end)
        context = BuildContext(
            project_dir=repo,
            state_dir=repo / ".pyci",
            builds_root=tmp_path / "builds",
            debug_shell=("sh", "-c", 'echo "path=$KUBECONFIG"; cat "$KUBECONFIG"'),
        )
        run_build(job, executor, context, Recorder(), threading.Event())
    finally:
        os.close(read_end)
        os.close(write_end)
    text = output.read_text().replace("\r\n", "\n")
    path = next(line for line in text.splitlines() if line.startswith("path="))
    assert path.endswith("/demo.tmp/KUBECONFIG"), text
    assert "apiVersion: v1\n" in text
    assert executor.exit_code == 0


FAILING = """
job:
  variables:
    STATE: from-the-job
  script:
    - echo broken > state.txt
    - exit 5
  after_script:
    - echo after ran
"""


def test_shell_on_failure_with_the_shell_executor_opens_a_host_shell(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": FAILING})
    code, output = drive_on_pty(
        ["run", "--shell-on-failure", "--executor", "shell"],
        repo,
        env,
        (b"exit to go on", b"# "),  # root's prompt: bash has set up line editing
        b'echo "found $(cat state.txt) $STATE"; exit\n',
    )
    assert code == 1, output
    assert "found broken from-the-job" in output
    assert output.index("found broken") < output.index("after ran")


def test_the_debug_shell_script_runs_before_script_then_execs_the_shell():
    from runner.build.scripts import SHELL_STARTED, ScriptEnvironment, ScriptVariable, debug_shell

    env = ScriptEnvironment("/builds/g/p", "/builds/g/p.tmp", (ScriptVariable("A", "1"),), "bash")
    text = debug_shell(env, ["cd sub"])
    lines = text.splitlines()
    body = lines[lines.index("{") + 1 : lines.index("} < /dev/null")]
    assert body[0] == "export A=1"
    assert body[1] == "cd /builds/g/p"
    assert body[-2] == "cd sub"  # before_script, after its echo
    assert body[-1] == f": > /builds/g/p.tmp/{SHELL_STARTED}"
    # after the group, whose stdin is /dev/null: the shell gets the script's own stdin
    assert lines[-1] == "exec bash -i"
    assert debug_shell(env, [], ("make", "test it")).splitlines()[-1] == "exec make 'test it'"
