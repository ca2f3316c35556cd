"""Fixtures for build tests: a real git project, a recording reporter, a build runner."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from executors.factory import ExecutorOptions, create_executor
from runner.build.build import run_build
from runner.build.context import BuildContext
from runner.core.events import Event, JobOutcome, LogChunk, SectionStarted
from runner.core.jobspec import JobSpec
from tests.gitutil import git


@dataclass
class Recorder:
    """A reporter keeping every event (thread-safe)."""

    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def log(self, job: str | None = None) -> str:
        return "".join(
            e.text for e in self.events if isinstance(e, LogChunk) and job in (None, e.job)
        )

    def sections(self, job: str | None = None) -> list[str]:
        return [
            e.section for e in self.events if isinstance(e, SectionStarted) and job in (None, e.job)
        ]


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under `root` (except .pyci) with its mode and content, to compare trees."""
    result: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and ".pyci" in dirnames:
            dirnames.remove(".pyci")
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                result[rel] = (st.st_mode, os.readlink(path))
            elif path.is_file():
                result[rel] = (st.st_mode, path.read_bytes())
            else:
                result[rel] = (st.st_mode, "")
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with one commit, an uncommitted change and an untracked file."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.txt").write_text("committed\n")
    (root / "README").write_text("readme\n")
    (root / ".gitignore").write_text(".pyci/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    (root / "src" / "main.txt").write_text("uncommitted\n")
    (root / "scratch-notes.txt").write_text("untracked\n")
    return root


@dataclass
class Builder:
    project: Path
    builds_root: Path
    recorder: Recorder = field(default_factory=Recorder)

    def context(self, **kwargs) -> BuildContext:
        kwargs.setdefault("builds_root", self.builds_root)
        return BuildContext(project_dir=self.project, state_dir=self.project / ".pyci", **kwargs)

    def run(
        self,
        job: JobSpec,
        cancel: threading.Event | None = None,
        options: ExecutorOptions | None = None,
        **ctx,
    ) -> JobOutcome:
        executor = create_executor("shell", options or ExecutorOptions())
        return run_build(
            job, executor, self.context(**ctx), self.recorder, cancel or threading.Event()
        )


@pytest.fixture
def builder(project: Path, tmp_path: Path) -> Builder:
    return Builder(project, tmp_path / "builds")


@pytest.fixture
def make_job() -> Callable[..., JobSpec]:
    def make(name: str = "job", script: tuple[str, ...] = ("true",), **kwargs) -> JobSpec:
        return JobSpec(name=name, stage="test", stage_index=0, script=script, **kwargs)

    return make
