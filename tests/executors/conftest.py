"""The executor conformance suite's fixtures: every scenario runs against every executor.

`shell` and `container` (the container on the host's root, as a job without `image:` runs;
network `none`). For the container, the leftover check of tests/container runs after each
scenario: no mount, cgroup, netns, link or container process may survive it.

To add an executor, add its name to EXECUTORS and a branch to `make_executor`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance_helpers import CollectingLog, Prepared

from executors.base import BuildDirs, Executor
from executors.container.probe import container_unavailable_reason
from executors.container.runtime import Launcher, remove_tree
from executors.factory import ExecutorOptions, create_executor
from runner.core import background
from runner.core.jobspec import JobSpec
from tests.container.conftest import leftovers, snapshot

EXECUTORS = ["shell", "container"]


@pytest.fixture(scope="session")
def launcher() -> Iterator[Launcher]:
    launcher = Launcher("serve")
    yield launcher
    launcher.close()


def make_executor(kind: str, state_dir: Path, launcher: Launcher) -> Executor:
    if kind == "container":
        from executors.container.executor import ContainerExecutor
        from executors.factory import container_settings

        settings = container_settings(ExecutorOptions(network="none"))
        return ContainerExecutor(dataclasses.replace(settings, state_dir=state_dir), launcher)
    return create_executor(kind, ExecutorOptions())


@pytest.fixture(params=EXECUTORS)
def prepared(request, tmp_path: Path) -> Iterator[Prepared]:
    if request.param == "container" and container_unavailable_reason():
        pytest.skip(f"containers cannot run here: {container_unavailable_reason()}")
    before = snapshot() if request.param == "container" else None
    state_dir = Path(tempfile.mkdtemp(prefix="pyci-conformance-state-"))
    launcher = request.getfixturevalue("launcher") if request.param == "container" else None
    executor = make_executor(request.param, state_dir, launcher)  # type: ignore[arg-type]
    dirs = BuildDirs(project_dir=tmp_path / "job" / "project", scratch=tmp_path / "job" / "tmp")
    dirs.project_dir.mkdir(parents=True)
    (dirs.project_dir / "file.txt").write_text("from the project\n")
    log = CollectingLog()
    job = JobSpec(name="conformance", stage="test", stage_index=0, script=("true",))
    executor.prepare(job, dirs, log)
    try:
        yield Prepared(executor, dirs, log)
    finally:
        executor.cleanup()
        background.finish_removals()
        remove_tree(state_dir)
    if before is not None:
        assert leftovers(before) == {}
