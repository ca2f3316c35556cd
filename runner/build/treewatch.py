"""Tell, without running git, that the user's work tree has not changed since a moment.

A job must see the work tree as it is when the job starts, so every job used to ask
`git status` (a process, a few ms). Between the jobs of one run the tree rarely changes, so
pyci watches it with inotify: the directories holding tracked files (listed from the run's
checkout), `.git` and `.git/refs/**` (HEAD, the index, branches). Any event there except pyci's
own `.pyci/` means "ask git again"; so does a full event queue. Untracked files that come and go
in those directories cause needless (never wrong) checks. Directories created later are not
watched, but a file in them only counts once `git add` touches the index, which is watched.

Where inotify is not available (or the watch limit is reached) `TreeWatch.start` returns None
and every job asks git, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Iterable
from pathlib import Path

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
# modify, attrib, close_write, moved_from, moved_to, create, delete, delete_self, move_self
_EVENTS = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_IGNORED_NAMES = {b".pyci"}  # pyci's own state beside .gitlab-ci.yml

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


class TreeWatch:
    """Changes under a work tree since `start`; `changed()` stays True once it was."""

    def __init__(self, fd: int, root_wd: int) -> None:
        self._fd = fd
        self._root_wd = root_wd
        self._changed = False

    @classmethod
    def start(cls, root: Path, tracked_dirs: Iterable[str]) -> TreeWatch | None:
        git_dir = root / ".git"
        if _libc is None or not git_dir.is_dir():
            return None  # a worktree's .git file or a bare setup: keep asking git
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return None
        dirs = [root, git_dir, *(root / rel for rel in tracked_dirs)]
        refs = git_dir / "refs"
        dirs += [Path(d) for d, _subdirs, _files in os.walk(refs)]
        root_wd = -1
        for directory in dirs:
            wd = _libc.inotify_add_watch(fd, os.fsencode(directory), _EVENTS)
            if wd < 0:
                os.close(fd)  # out of watches (fs.inotify.max_user_watches) or a race
                return None
            if directory == root:
                root_wd = wd
        return cls(fd, root_wd)

    def changed(self) -> bool:
        if self._changed or self._fd < 0:
            return True
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return False
            except OSError:
                self._changed = True
                return True
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + length].rstrip(b"\0")
                offset += _HEADER.size + length
                if mask & _IN_IGNORED:
                    continue
                if mask & _IN_Q_OVERFLOW or not (wd == self._root_wd and name in _IGNORED_NAMES):
                    self._changed = True
                    return True

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        self._changed = True


def tracked_dirs(tree: Path) -> list[str]:
    """Directories of a checkout (its .git left out), relative to it."""
    found = []
    for dirpath, dirnames, _files in os.walk(tree):
        if dirpath == str(tree) and ".git" in dirnames:
            dirnames.remove(".git")
        found.extend(os.path.relpath(os.path.join(dirpath, name), tree) for name in dirnames)
    return found
