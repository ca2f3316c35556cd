"""Generated scripts: exact text against golden files, and what bash and sh make of them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.build import scripts
from runner.build.scripts import ScriptEnvironment, ScriptVariable
from runner.build.shellwriter import quote

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PYCI_UPDATE_GOLDEN") == "1"

TRICKY = {
    "PLAIN": "value",
    "SPACES": "two words",
    "QUOTE": "it's",
    "DOLLAR": "$HOME and ${PATH} and $(echo no)",
    "BACKTICK": "`echo no`",
    "BACKSLASH": "a\\nb\\",
    "NEWLINE": "line1\nline2",
    "UNICODE": "grüße ✓",
    "EMPTY": "",
    "GLOB": "*",
    "ESCAPE": "\x1b[31mred",
}

COMMANDS = (
    'echo "hello world"',
    "  echo 'leading and trailing blanks'  ",
    "",
    "for i in 1 2; do\n  echo $i\ndone",
    "printf '%s\\n' \"$QUOTE\"",
)


def environment(project: str, shell: str = "bash") -> ScriptEnvironment:
    variables = tuple(ScriptVariable(k, v) for k, v in TRICKY.items())
    variables += (
        ScriptVariable("CONFIG_FILE", "key: 'value'\n", file=True),
        ScriptVariable("not-a-name", "x"),
    )
    return ScriptEnvironment(project, project + ".tmp", variables, shell)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; PYCI_UPDATE_GOLDEN=1 rewrites it"


def test_step_script_golden():
    text = scripts.step_script(
        environment("/builds/group/project"), ("cd src", "export X=1"), COMMANDS
    )
    check_golden("step_script.bash", text)


def test_after_script_golden():
    env = ScriptEnvironment("/builds/group/project", "/builds/group/project.tmp", (), "sh")
    text = scripts.after_script(env, ('echo "status: $CI_JOB_STATUS"',), "timedout")
    check_golden("after_script.sh", text)


def test_step_script_without_commands_golden():
    env = ScriptEnvironment("/p", "/p.tmp", (ScriptVariable("A", "1"),), "bash")
    check_golden("empty_step_script.bash", scripts.step_script(env, (), ()))


@pytest.mark.parametrize("value", [*TRICKY.values(), "'", "''", "a'b'c", "-n", "\t"])
def test_quote_round_trips_through_the_shell(value: str):
    result = subprocess.run(
        ["sh", "-c", f"printf '%s' {quote(value)}"], capture_output=True, text=True, check=True
    )
    assert result.stdout == value


def run_script(text: str, shell: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = cwd.parent / "script"
    path.write_text(text)
    return subprocess.run(
        [shell, str(path)], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_variables_reach_the_script_exactly(tmp_path: Path, shell: str):
    project = tmp_path / "project"
    project.mkdir()
    check = ['printf "%s|" ' + " ".join(f'"${key}"' for key in TRICKY)]
    check.append('cat "$CONFIG_FILE"; echo "$CONFIG_FILE"')
    text = scripts.step_script(environment(str(project), shell), (), check)
    result = run_script(text, shutil.which(shell) or shell, project)
    assert result.returncode == 0, result.stderr
    expected_values = "|".join(TRICKY.values()) + "|"
    assert expected_values in result.stdout
    assert f"key: 'value'\n{project}.tmp/CONFIG_FILE" in result.stdout
    assert "Skipping variable 'not-a-name'" in result.stdout


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_commands_are_echoed_green_and_stop_at_the_first_failure(tmp_path: Path, shell: str):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    text = scripts.step_script(
        ScriptEnvironment(str(project), str(project) + ".tmp", (), shell),
        ("cd sub",),
        ("pwd", "echo one\necho two", "false | true", "exit 7", "echo never"),
    )
    result = run_script(text, shell, tmp_path)
    out = result.stdout
    assert "\x1b[32;1m$ cd sub\x1b[0;m\n" in out
    assert "\x1b[32;1m$ echo one # collapsed multi-line command\x1b[0;m\none\ntwo\n" in out
    assert f"{project}/sub\n" in out  # before_script and script share one shell
    assert "never" not in out
    # pipefail where the shell has it: bash fails at `false | true`, dash goes on to `exit 7`
    assert result.returncode == (1 if shell == "bash" else 7)


def test_a_command_reading_stdin_cannot_eat_the_script(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    text = scripts.step_script(
        ScriptEnvironment(str(project), str(project) + ".tmp", (), "bash"),
        (),
        ("cat", "echo still here"),
    )
    # fed on stdin, the way a container executor may hand it over
    result = subprocess.run(["bash", "-s"], input=text, capture_output=True, text=True)
    assert result.returncode == 0
    assert "still here" in result.stdout


def test_after_script_exports_job_status(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    env = ScriptEnvironment(str(project), str(project) + ".tmp", (), "sh")
    for status in ("success", "failed", "canceled", "timedout"):
        text = scripts.after_script(env, ('echo "status=$CI_JOB_STATUS"',), status)
        assert f"status={status}\n" in run_script(text, "sh", tmp_path).stdout
