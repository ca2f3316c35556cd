"""The executor conformance suite's fixtures: every scenario runs against every executor.

To add an executor, add its name to EXECUTORS and, if it needs more than `create_executor`
with default options, a branch to `make_executor`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance_helpers import CollectingLog, Prepared

from executors.base import BuildDirs, Executor
from executors.factory import ExecutorOptions, create_executor
from runner.jobspec import JobSpec

EXECUTORS = ["shell"]


def make_executor(kind: str) -> Executor:
    return create_executor(kind, ExecutorOptions())


@pytest.fixture(params=EXECUTORS)
def prepared(request, tmp_path: Path) -> Iterator[Prepared]:
    executor = make_executor(request.param)
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
