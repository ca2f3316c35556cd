"""Make an executor by name from what the command line chose."""

from __future__ import annotations

from dataclasses import dataclass

from executors.base import Executor
from runner.errors import UsageError

EXECUTORS = ("shell",)


@dataclass(frozen=True)
class ExecutorOptions:
    """Everything executors need from the CLI (the container executor adds its own fields)."""

    shell: str | None = None  # shell executor: bash (default, else sh) or a named shell
    isolate_pids: bool | None = None  # shell executor: own PID namespace per stage (None: auto)


def create_executor(kind: str, options: ExecutorOptions) -> Executor:
    if kind == "shell":
        from executors.shell import ShellExecutor, ShellSettings

        return ShellExecutor(ShellSettings(shell=options.shell, isolate_pids=options.isolate_pids))
    raise UsageError(f"--executor {kind}: unknown executor (choose from {', '.join(EXECUTORS)})")
