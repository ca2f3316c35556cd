"""On a terminal `pyci run` shows the live view, then the summary; in a pipe, plain lines."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
import time

from tests.run.conftest import REPO_ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(project, *args: str, rows: int = 30, cols: int = 100) -> tuple[int, str]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes pyci, on the pseudo-terminal
        os.chdir(project)
        os.environ["PYTHONPATH"] = str(REPO_ROOT)
        os.environ["PYCI_BUILDS_DIR"] = str(project.parent / "builds")
        os.execv(sys.executable, [sys.executable, "-m", "runner", "run", *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), ANSI.sub("", output.decode(errors="replace"))


def test_live_view_then_summary_on_a_terminal(project):
    exit_code, screen = run_on_terminal(project("warnings"))
    assert exit_code == 0
    # the live view: a line per job, then the counts under them
    assert re.search(r"✔ success +lint|✘ failed\* +lint", screen)
    assert re.search(r"\d+\.\d+s  .*passed", screen)
    # plain-mode prefixes never appear on a terminal
    assert "[lint]" not in screen
    summary = screen[screen.rindex("job ") :]
    assert re.search(r"lint +build +failed \(allowed\) .* 1 +yes", summary)
    assert "Pipeline passed with warnings" in summary
