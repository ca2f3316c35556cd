"""The `pyci` command run as its own process, as a user runs it (shared by test folders)."""

from __future__ import annotations

import os
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


def isolated_env(root: Path, repo_root: Path) -> dict[str, str]:
    """pyci's environment for one test: its own image store, run dir, builds dir and temp
    dir under `root` (made here), and this checkout of pyci on its path."""
    for name in ("home", "run", "builds", "tmp"):
        (root / name).mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYCI_HOME": str(root / "home"),
        "PYCI_RUN_DIR": str(root / "run"),
        "PYCI_BUILDS_DIR": str(root / "builds"),
        "TMPDIR": str(root / "tmp"),
        "PYTHONPATH": str(repo_root),
    }
