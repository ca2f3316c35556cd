"""One clean snapshot of the sources per run, and each job's private view of it.

Getting sources used to mean a `git clone --shared` + checkout + copying the uncommitted changes
for every job: about 100 ms and five git processes per job. Yet every job of a run starts from
the same sources. So the first job of a run builds a *snapshot* (the same clone + checkout +
changes, once, in `<project builds>/pyci-snapshot-*/tree`), and every job gets a private view:

- as root, an overlayfs mount at the job's project dir: the snapshot is the read-only lower
  layer, the job's writes go to `pyci-upper/` in its own job dir (a mount costs well under a
  millisecond and removing it removes only what the job wrote);
- otherwise a copy of the snapshot (`cp -a --reflink=auto`: copy-on-write where the file system
  can). Hard links would be cheaper but not private: a job writing into a file would change
  the snapshot, and so every later job.

A snapshot is keyed by HEAD and the uncommitted changes of tracked files (their status and
their files' size, mtime and inode), read with one `git status` per job: a job always sees the
tree as it is when the job starts, and jobs of one run share a snapshot when nothing changed.
A snapshot another key replaced is removed as soon as no job uses it; the rest are removed at
pyci's exit (`release_all`). Each snapshot holds an `flock` on its directory like a job dir
does, so a run that crashed leaves an unlocked one that the next build sweeps (workspace.py).
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from runner import background
from runner.build import workspace

SNAPSHOT_PREFIX = "pyci-snapshot-"


@dataclass
class Snapshot:
    """A checked-out clone with the uncommitted changes applied; never written after it is
    built (overlays of running jobs read it)."""

    key: tuple[object, ...]
    holder: workspace.LockedDir
    tree: Path
    head: str
    overlaid: int
    users: int = 0
    superseded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def release(self) -> None:
        _cache.release(self)


class SnapshotCache:
    """Process-wide: snapshots by project builds dir; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[Path, Snapshot] = {}
        self._all: list[Snapshot] = []

    def acquire(self, project_builds: Path, key: tuple[object, ...], build) -> Snapshot:
        """The snapshot for `key`, built by `build(holder) -> (tree, head, overlaid)` if it is
        not there yet (one thread builds, others of the same project wait for it)."""
        with self._lock:
            current = self._current.get(project_builds)
            if current is not None and current.key == key:
                current.users += 1
                return current
            holder = workspace.lock_new_dir(project_builds, SNAPSHOT_PREFIX)
            try:
                tree, head, overlaid = build(holder.path)
            except BaseException:
                holder.remove()
                raise
            snapshot = Snapshot(key, holder, tree, head, overlaid, users=1)
            self._current[project_builds] = snapshot
            self._all.append(snapshot)
            if current is not None:
                current.superseded = True
                if current.users == 0:
                    self._drop(current)
            return snapshot

    def release(self, snapshot: Snapshot) -> None:
        with self._lock:
            snapshot.users -= 1
            if snapshot.superseded and snapshot.users <= 0:
                self._drop(snapshot)

    def release_all(self) -> None:
        """Remove every snapshot (at the end of the run: no job uses them any more), after
        the jobs' own directories still being removed."""
        background.finish_removals()
        with self._lock:
            for snapshot in list(self._all):
                self._drop(snapshot)
            self._current.clear()

    def _drop(self, snapshot: Snapshot) -> None:
        if snapshot in self._all:
            self._all.remove(snapshot)
        if self._current.get(snapshot.holder.path.parent) is snapshot:
            del self._current[snapshot.holder.path.parent]
        snapshot.holder.remove()


_cache = SnapshotCache()
acquire = _cache.acquire
release_all = _cache.release_all
atexit.register(release_all)


# -- a job's private view ---------------------------------------------------------------------

_overlay_usable: bool | None = None  # None: not tried yet
_overlay_lock = threading.Lock()
_UNSAFE_IN_OPTIONS = (",", ":", "\\", "\n")


def private_view(snapshot: Snapshot, ws: workspace.Workspace) -> str:
    """Give the job its own writable view of `snapshot` at its project dir; "overlay" or
    "copy", whichever was used. `PYCI_SOURCES_VIEW=copy` asks for copies (say, where an
    overlay's quirks matter: inode numbers, renaming directories on old kernels)."""
    global _overlay_usable
    target = ws.dirs.project_dir
    wanted = os.environ.get("PYCI_SOURCES_VIEW", "auto").lower()
    try_overlay = wanted != "copy" and _overlay_usable is not False
    if try_overlay and _overlay_possible(snapshot.tree, ws.job_dir):
        upper, work = ws.job_dir / "pyci-upper", ws.job_dir / "pyci-work"
        for path in (upper, work, target):
            path.mkdir(exist_ok=True)
        try:
            _mount_overlay(snapshot.tree, upper, work, target)
        except OSError:
            with _overlay_lock:
                _overlay_usable = False  # not root, or no overlayfs here: copy from now on
            for path in (upper, work, target):
                shutil.rmtree(path, ignore_errors=True)
        else:
            ws.mounts.append(target)
            _overlay_usable = True
            return "overlay"
    _copy_tree(snapshot.tree, target)
    return "copy"


def _overlay_possible(tree: Path, job_dir: Path) -> bool:
    # mount options are comma-separated and lowerdir colon-separated: such paths cannot be said
    return os.geteuid() == 0 and not any(
        bad in str(path) for path in (tree, job_dir) for bad in _UNSAFE_IN_OPTIONS
    )


# extra overlay options, best first; the first the kernel accepts is kept
_OVERLAY_EXTRAS = [
    # renaming a directory that came from the checkout works (else EXDEV, as on Docker).
    # Not `volatile` (no syncfs at unmount): it makes each mount create more directories
    # and measured 1-2 ms slower per job here
    ",redirect_dir=on",
    "",
]


def _mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    from executors.container import syscalls

    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    while True:
        extras = _OVERLAY_EXTRAS[0]
        try:
            syscalls.mount("pyci-sources", str(target), "overlay", 0, options + extras)
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL or len(_OVERLAY_EXTRAS) == 1:
                raise  # not about the options (not root, no overlayfs): copies from now on
            with _overlay_lock:
                if _OVERLAY_EXTRAS and _OVERLAY_EXTRAS[0] == extras and len(_OVERLAY_EXTRAS) > 1:
                    _OVERLAY_EXTRAS.pop(0)


def _copy_tree(source: Path, target: Path) -> None:
    if shutil.which("cp"):
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", str(source), str(target)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode == 0:
            return
        shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)
