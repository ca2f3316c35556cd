"""The directories of one job's build, outside the user's tree, and their removal.

Each job gets `<builds root>/<project>-<hash>/<job>-<random>/` holding `<project>/` (its copy of
the repository, CI_PROJECT_DIR for the shell executor) and `<project>.tmp/` (its scratch: file
variables and stage scripts, gitlab-runner's RUNNER_TEMP_PROJECT_DIR).

Why not under `.pyci/` in the user's tree: tools resolve things by walking up from the current
directory (Node's `node_modules`, Python's `conftest.py` and config files, `.editorconfig`,
git itself when the copy has no `.git`), so a copy nested in the user's tree could silently
use the user's files and pass locally while failing on GitLab. The root is
`$PYCI_BUILDS_DIR`, else `$XDG_CACHE_HOME/pyci/builds` (`~/.cache/pyci/builds`): on disk, not
a RAM-backed /tmp. The root is private (0700, executors/statedirs.py) and so is each job dir:
what a job wrote (setuid binaries included) is out of other local users' reach.

A build holds an exclusive `flock` on its job directory while it runs (and a run on its
snapshot of the sources, see snapshot.py). A run that crashed left its directories unlocked, so
the next build of the same project removes every unlocked sibling, unmounting first what is
mounted inside (a job's overlay of the sources is mounted at its project dir).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from executors.base import BuildDirs
from executors.statedirs import private_dir

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_builds_root() -> Path:
    explicit = os.environ.get("PYCI_BUILDS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pyci" / "builds"


def _safe(name: str, limit: int = 40) -> str:
    return (_UNSAFE.sub("-", name).strip("-.") or "x")[:limit]


@functools.lru_cache(maxsize=64)
def _resolved(project_dir: Path) -> Path:
    # a realpath per path component: once per project and process, not three times a job
    return project_dir.resolve()


def project_builds_dir(root: Path, project_dir: Path) -> Path:
    resolved = _resolved(project_dir)
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    return root / f"{_safe(resolved.name)}-{digest}"


@dataclass
class LockedDir:
    """A new directory this process holds an exclusive flock on while it exists."""

    path: Path
    _lock_fd: int
    mounts: list[Path] = field(default_factory=list)  # unmounted before removal

    @property
    def job_dir(self) -> Path:
        return self.path

    def remove(self) -> None:
        """Unmount what we mounted inside, delete everything; safe to call twice."""
        while self.mounts:
            _unmount(self.mounts.pop())
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only when no other build of the project remains


@dataclass
class Workspace(LockedDir):
    """A job's directory: its project dir (the sources) and scratch dir inside."""

    dirs: BuildDirs = field(kw_only=True)


def _unmount(point: Path) -> None:
    from executors.linux import syscalls

    with contextlib.suppress(OSError):
        # lazy: even a process of the job still inside could not keep it (none should be)
        syscalls.umount2(str(point), syscalls.MNT_DETACH)


def unmount_all_under(directory: Path) -> None:
    """Unmount whatever is mounted at or below `directory` (a crashed run's overlays)."""
    inside = str(directory).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and _unescape(fields[4]).startswith(inside):
            points.append(_unescape(fields[4]))
    for point in sorted(points, key=len, reverse=True):
        _unmount(Path(point))


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def sweep_stale(project_builds: Path) -> list[Path]:
    """Remove job directories that no running build holds (left by a crashed run)."""
    removed: list[Path] = []
    try:
        entries = list(project_builds.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed  # nothing yet, or just removed by the last build of another run
    for entry in entries:
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
            unmount_all_under(entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def lock_new_dir(project_builds: Path, prefix: str) -> LockedDir:
    """A fresh directory `<project_builds>/<prefix>XXXX`, locked against sweeps."""
    while True:
        # another build may sweep our new directory before we lock it, or remove the (then
        # empty) project directory, even between mkdir's "exists" and its check that it is a
        # directory (FileExistsError): all only mean "try again"
        try:
            project_builds.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=project_builds))
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileExistsError:
            if os.path.lexists(project_builds) and not project_builds.is_dir():
                raise  # a file where the directory should be: no retry helps
            continue
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if path.exists():
            return LockedDir(path, fd)
        os.close(fd)


_swept: set[Path] = set()  # project builds dirs swept by this process already
_swept_lock = threading.Lock()


def create(root: Path, project_dir: Path, job: str) -> Workspace:
    # jobs write setuid files and devices into their copies: no local user may reach them
    project_builds = project_builds_dir(private_dir(root), project_dir)
    with _swept_lock:
        # what a crashed run left is there before this process starts: one sweep is enough
        first = project_builds not in _swept
        _swept.add(project_builds)
    if first:
        sweep_stale(project_builds)
    locked = lock_new_dir(project_builds, f"{_safe(job)}-")
    job_dir = locked.path
    name = _safe(_resolved(project_dir).name, 80)
    scratch = job_dir / f"{name}.tmp"
    # readable by a job running as a non-root `user:` (its stage scripts are here); the job
    # dir above it (mkdtemp, 0700) keeps host users out
    scratch.mkdir()
    scratch.chmod(0o755)  # whatever the umask
    dirs = BuildDirs(project_dir=job_dir / name, scratch=scratch)
    return Workspace(job_dir, locked._lock_fd, dirs=dirs)
