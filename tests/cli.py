"""The `pyci` command run as its own process, as a user runs it (shared by test folders)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# a watchdog for a command that would hang; commands end well before it
TIMEOUT = 120


def run_pyci(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`pyci ARGS` in `cwd` with exactly `env`, no stdin; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
