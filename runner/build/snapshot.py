"""The sources' snapshot, kept from run to run, and each job's private view of it.

Getting sources used to mean a `git clone --shared` + checkout + copying the uncommitted changes
for every job: about 100 ms and five git processes per job. Yet every job of a run starts from
the same sources, and most runs start from nearly the sources of the last one. So a project
has one *kept checkout*, `<project builds>.sources/tree`, that outlives the run: the first job
of a run brings it to HEAD (`git reset --hard`, which rewrites only the files that differ, and
`git clean`) and applies the uncommitted changes; and every job gets a private view of it:

- as root, an overlayfs mount at the job's project dir: the snapshot is the read-only lower
  layer, the job's writes go to `pyci-upper/` in its own job dir (a mount costs well under a
  millisecond and removing it removes only what the job wrote);
- otherwise a copy of the snapshot (`cp -a --reflink=auto`: copy-on-write where the file system
  can). Hard links would be cheaper but not private: a job writing into a file would change
  the snapshot, and so every later job.

A snapshot is keyed by HEAD and the uncommitted changes of tracked files (their status and
their files' size, mtime and inode), read with one `git status` per job: a job always sees the
tree as it is when the job starts, and jobs of one run share a snapshot when nothing changed.
When the key changes while no job reads the kept checkout, it is updated in place; while jobs
still read it (or another pyci run holds its `flock`), a fresh snapshot is built in
`<project builds>/pyci-snapshot-*/tree` and removed once no job uses it, or at the end of the
run (`release_all`), which only unlocks the kept one: the end of a run removes nothing big.
A fresh snapshot holds an `flock` on its directory like a job dir does, so a run that crashed
leaves an unlocked one that the next build sweeps (workspace.py); a kept checkout a crash left
half-updated is reset by the next run, or cloned again if git cannot use it.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from runner.build import workspace
from runner.core import background

SNAPSHOT_PREFIX = "pyci-snapshot-"
KEPT_SUFFIX = ".sources"  # <project builds>.sources/tree: the checkout kept between runs


@dataclass
class KeptDir:
    """The project's checkout kept between runs (beside its builds dir, out of reach of the
    sweep of stale job dirs); one run at a time holds its flock, and it is never removed."""

    path: Path
    _lock_fd: int

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def lock_kept_dir(project_builds: Path) -> KeptDir | None:
    """The kept checkout's dir, locked; None when another run (or this one) holds it."""
    path = project_builds.with_name(project_builds.name + KEPT_SUFFIX)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return KeptDir(path, fd)


@dataclass
class Snapshot:
    """A checked-out clone with the uncommitted changes applied; never written while a job
    uses it (overlays of running jobs read it)."""

    key: tuple[object, ...]
    project_builds: Path
    holder: workspace.LockedDir | KeptDir
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
        not there yet (one thread builds, others of the same project wait for it).

        A snapshot is the project's kept checkout, which `build` brings up to date (its tree
        may be there from an earlier run), unless jobs still read that one: a work tree
        changed meanwhile then gets a fresh directory, removed after use."""
        with self._lock:
            current = self._current.get(project_builds)
            if current is not None and current.key == key:
                current.users += 1
                return current
            if current is not None and current.users == 0:  # no job reads it: update it
                self._drop(current)
                current = None
            holder: workspace.LockedDir | KeptDir | None = None
            if current is None:
                holder = lock_kept_dir(project_builds)
            if holder is None:
                holder = workspace.lock_new_dir(project_builds, SNAPSHOT_PREFIX)
            try:
                tree, head, overlaid = build(holder.path)
            except BaseException:
                _let_go(holder)
                raise
            snapshot = Snapshot(key, project_builds, holder, tree, head, overlaid, users=1)
            self._current[project_builds] = snapshot
            self._all.append(snapshot)
            if current is not None:  # removed once its last job is done
                current.superseded = True
            return snapshot

    def release(self, snapshot: Snapshot) -> None:
        with self._lock:
            snapshot.users -= 1
            if snapshot.superseded and snapshot.users <= 0:
                self._drop(snapshot)

    def release_all(self) -> None:
        """Let go of every snapshot (at the end of the run: no job uses them any more), after
        the jobs' own directories still being removed: the kept checkout is unlocked, the
        others removed."""
        background.finish_removals()
        with self._lock:
            for snapshot in list(self._all):
                self._drop(snapshot)
            self._current.clear()

    def _drop(self, snapshot: Snapshot) -> None:
        if snapshot in self._all:
            self._all.remove(snapshot)
        if self._current.get(snapshot.project_builds) is snapshot:
            del self._current[snapshot.project_builds]
        _let_go(snapshot.holder)


def _let_go(holder: workspace.LockedDir | KeptDir) -> None:
    if isinstance(holder, KeptDir):
        holder.unlock()  # kept for the next run
    else:
        holder.remove()


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
    from executors.container import names
    from executors.linux import syscalls

    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    while True:
        extras = _OVERLAY_EXTRAS[0]
        try:
            syscalls.mount(names.sources_mount(), str(target), "overlay", 0, options + extras)
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
