"""The directories of one job's build, outside the user's tree, and their removal.

Each job gets `<builds root>/<project>-<hash>/<job>-<random>/` holding `<project>/` (its copy of
the repository, CI_PROJECT_DIR for the shell executor) and `<project>.tmp/` (its scratch: file
variables and stage scripts, gitlab-runner's RUNNER_TEMP_PROJECT_DIR).

Why not under `.pyci/` in the user's tree: tools resolve things by walking up from the current
directory (Node's `node_modules`, Python's `conftest.py` and config files, `.editorconfig`,
git itself when the copy has no `.git`), so a copy nested in the user's tree could silently
use the user's files and pass locally while failing on GitLab. The root is
`$PYCI_BUILDS_DIR`, else `$XDG_CACHE_HOME/pyci/builds` (`~/.cache/pyci/builds`): on disk, not
a RAM-backed /tmp.

A build holds an exclusive `flock` on its job directory while it runs. A run that crashed left
its directory unlocked, so the next build of the same project removes every unlocked sibling.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from executors.base import BuildDirs

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_builds_root() -> Path:
    explicit = os.environ.get("PYCI_BUILDS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pyci" / "builds"


def _safe(name: str, limit: int = 40) -> str:
    return (_UNSAFE.sub("-", name).strip("-.") or "x")[:limit]


def project_builds_dir(root: Path, project_dir: Path) -> Path:
    digest = hashlib.sha1(str(project_dir.resolve()).encode()).hexdigest()[:8]
    return root / f"{_safe(project_dir.resolve().name)}-{digest}"


@dataclass
class Workspace:
    job_dir: Path
    dirs: BuildDirs
    _lock_fd: int

    def remove(self) -> None:
        """Delete everything of this build; safe to call twice."""
        shutil.rmtree(self.job_dir, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        with contextlib.suppress(OSError):
            self.job_dir.parent.rmdir()  # only when no other build of the project remains


def sweep_stale(project_builds: Path) -> list[Path]:
    """Remove job directories that no running build holds (left by a crashed run)."""
    removed = []
    if not project_builds.is_dir():
        return removed
    for entry in project_builds.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live build holds it
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def create(root: Path, project_dir: Path, job: str) -> Workspace:
    project_builds = project_builds_dir(root, project_dir)
    project_builds.mkdir(parents=True, exist_ok=True)
    sweep_stale(project_builds)
    while True:
        # another build may sweep our new directory before we lock it, or remove the (then
        # empty) project directory: both only mean "try again"
        try:
            project_builds.mkdir(parents=True, exist_ok=True)
            job_dir = Path(tempfile.mkdtemp(prefix=f"{_safe(job)}-", dir=project_builds))
            fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if job_dir.exists():
            break
        os.close(fd)
    name = _safe(project_dir.resolve().name, 80)
    scratch = job_dir / f"{name}.tmp"
    scratch.mkdir(mode=0o700)
    return Workspace(job_dir, BuildDirs(project_dir=job_dir / name, scratch=scratch), fd)
