"""Make an executor by name from what the command line chose."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from executors.base import Executor
from runner.core.errors import UsageError

EXECUTORS = ("shell", "container")


@dataclass(frozen=True)
class ExecutorOptions:
    """Everything executors need from the CLI (the container executor adds its own fields)."""

    shell: str | None = None  # shell executor: bash (default, else sh) or a named shell
    isolate_pids: bool | None = None  # shell executor: own PID namespace per stage (None: auto)
    # container executor (see docs/container.md); None: the runtime's default
    default_image: str | None = None  # None: the host root as a read-only lower layer
    network: str = "bridge"  # none | host | bridge
    memory: int | None = None  # bytes
    cpus: float | None = None
    pids_limit: int | None = None
    no_new_privs: bool = False
    pull_policy: str = "if-not-present"
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    service_log_dir: Path | None = None  # .pyci/logs/ of the project
    image_home: Path | None = None  # None: $PYCI_HOME or its default


def create_executor(kind: str, options: ExecutorOptions) -> Executor:
    if kind == "shell":
        from executors.shell import ShellExecutor, ShellSettings

        return ShellExecutor(ShellSettings(shell=options.shell, isolate_pids=options.isolate_pids))
    if kind == "container":
        from executors.container.executor import ContainerExecutor

        return ContainerExecutor(container_settings(options), shared_launcher())
    raise UsageError(f"--executor {kind}: unknown executor (choose from {', '.join(EXECUTORS)})")


def container_settings(options: ExecutorOptions):
    """The `ContainerSettings` the options describe (one place maps CLI to runtime)."""
    from executors.container.executor import ContainerSettings

    return ContainerSettings(
        image_home=options.image_home,
        default_image=options.default_image,
        network=options.network,  # type: ignore[arg-type]  # checked by the CLI's choices
        memory=options.memory,
        cpus=options.cpus,
        pids_limit=options.pids_limit,
        no_new_privs=options.no_new_privs,
        pull_policy=options.pull_policy,
        registry_mirrors=options.registry_mirrors,
        insecure_registries=options.insecure_registries,
        service_log_dir=options.service_log_dir,
    )


def shared_launcher():
    """The one fork server of this pyci process (see executors/container/launcher.py).

    `pyci run` starts it before the scheduler's threads exist (`start_launcher`) and closes
    it at exit; a caller that did not start it gets it started on first use."""
    from executors.container.runtime import shared_launcher as runtime_shared_launcher

    return runtime_shared_launcher()


@contextlib.contextmanager
def executor_session(kind: str) -> Iterator[None]:
    """What an executor kind needs for a whole run (or shell), owned for its length.

    For containers: the fork server, spawned now while pyci still has one thread (the
    scheduler's threads must never fork), with the recovery of a killed run's leftovers on a
    thread; stopped at the end however the run ends (Ctrl-C included), and the last veths
    checked gone. The shell executor needs nothing. An unknown kind is a usage error."""
    if kind not in EXECUTORS:
        raise UsageError(
            f"--executor {kind}: unknown executor (choose from {', '.join(EXECUTORS)})"
        )
    if kind != "container":
        yield
        return
    from executors.container.probe import container_unavailable_reason

    reason = container_unavailable_reason()
    if reason is not None:
        raise UsageError(f"--executor container: containers cannot run here ({reason})")
    try:
        start_launcher()
        yield
    finally:
        stop_launcher()


def start_launcher() -> None:
    """Spawn the container fork server now, while this process has a single thread; then
    start removing what a killed run left (a thread: the first job waits for it if needed)."""
    shared_launcher().start()
    from executors.container.recovery import recover_in_background

    recover_in_background()


def stop_launcher() -> None:
    """Stop the fork server if it was started (it kills every container it still keeps), then
    make sure the veths of the last containers are gone: nothing outlives pyci."""
    from executors.container.network import finish
    from executors.container.runtime import close_shared_launcher

    try:
        close_shared_launcher()
    finally:
        finish()
