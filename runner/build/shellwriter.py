"""The one place that writes shell text: quoting, exports, coloured notices, user commands.

Every script pyci hands to an executor is built here, so quoting bugs have one home and the
output can be tested as exact text (tests/build/golden/). The text is POSIX sh with one bash
nicety guarded at run time (`pipefail` where the shell has it), so the same script runs under
bash or dash/busybox sh. That is why values are single-quoted (no `$'...'` ANSI-C strings,
which dash lacks) and colours come from printf format strings (octal escapes that every printf
understands) while the text itself goes through `%s`, untouched.

The shape follows gitlab-runner's bash writer: errexit, pipefail where available, each user
command echoed in bold green as `$ command` before it runs, multi-line commands echoed as their
first line plus `# collapsed multi-line command`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# gitlab-runner's colours (helpers/ansi_colors.go), as printf octal escapes
BOLD_GREEN = r"\033[32;1m"
BOLD_RED = r"\033[31;1m"
YELLOW = r"\033[0;33m"
RESET = r"\033[0;m"

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote(value: str) -> str:
    """`value` as one shell word, literally: no expansion of `$`, backquotes, globs or `\\`."""
    if _SAFE.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def is_variable_name(key: str) -> bool:
    """Whether `key` can be exported by a POSIX shell."""
    return bool(_NAME.fullmatch(key))


class ShellWriter:
    """Accumulates the body of one stage script; `finish()` wraps it into the whole script.

    Generating text has no side effects: nothing here touches the file system.
    """

    def __init__(self, shell: str = "bash") -> None:
        self.shell = shell
        self._lines: list[str] = []

    # -- raw text -------------------------------------------------------------------------
    def line(self, text: str) -> None:
        self._lines.append(text)

    def command(self, *argv: str) -> None:
        """A command with every argument quoted literally."""
        self.line(" ".join(quote(arg) for arg in argv))

    # -- messages in the job log ----------------------------------------------------------
    def _colored(self, color: str, text: str) -> None:
        self.line(f"printf '{color}%s{RESET}\\n' {quote(text)}")

    def notice(self, text: str) -> None:
        self._colored(BOLD_GREEN, text)

    def warning(self, text: str) -> None:
        self._colored(YELLOW, text)

    def error(self, text: str) -> None:
        self._colored(BOLD_RED, text)

    def empty_line(self) -> None:
        self.line("echo")

    # -- environment ------------------------------------------------------------------------
    def export(self, key: str, value: str) -> None:
        if not is_variable_name(key):
            # gitlab-runner would emit an export that fails and aborts the job; a skipped name
            # with a warning is kinder and the variable could not be read by the shell anyway.
            self.warning(f"Skipping variable {key!r}: not a valid shell variable name")
            return
        self.line(f"export {key}={quote(value.replace(chr(0), ''))}")

    def export_file(self, key: str, content: str, tmp_dir: str) -> None:
        """A file-type variable: the content goes to `<tmp_dir>/<key>`, the variable holds
        the path (GitLab's `file` variables)."""
        if not is_variable_name(key):
            self.warning(f"Skipping variable {key!r}: not a valid shell variable name")
            return
        path = f"{tmp_dir}/{key}"
        self.command("mkdir", "-p", tmp_dir)
        self.line(f"printf '%s' {quote(content.replace(chr(0), ''))} > {quote(path)}")
        self.line(f"export {key}={quote(path)}")

    def cd(self, path: str) -> None:
        self.command("cd", path)

    # -- user commands -----------------------------------------------------------------------
    def user_command(self, command: str) -> None:
        """Echo `$ command` in bold green, then run the command as the user wrote it."""
        command = command.strip()
        if not command:
            self.empty_line()
            return
        first, _, rest = command.partition("\n")
        shown = f"$ {first} # collapsed multi-line command" if rest else f"$ {command}"
        self.notice(shown)
        self.line(command)

    # -- the whole script --------------------------------------------------------------------
    def finish(self, then_exec: Sequence[str] = ()) -> str:
        """The complete script. The body runs as one brace group with stdin from /dev/null:
        the shell parses the whole group before running any of it, so a command that reads
        stdin can never swallow the rest of a script that was fed to the shell on stdin.

        `then_exec`: once the body succeeded, the script's shell becomes this command (with
        the script's own stdin, a terminal for `pyci shell`), inheriting its variables and
        directory; by default the script exits 0."""
        head = [
            f"#!/usr/bin/env {self.shell}",
            "# generated by pyci; do not edit",
            "set +o noclobber",
            'case "$(set -o)" in *pipefail*) set -o pipefail ;; esac',
            "set -o errexit",
            "{",
        ]
        last = " ".join(["exec", *(quote(arg) for arg in then_exec)]) if then_exec else "exit 0"
        tail = ["} < /dev/null", last, ""]
        return "\n".join([*head, *self._lines, *tail])
