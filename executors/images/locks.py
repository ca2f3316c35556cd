"""File locks and atomic writes: how several pyci processes share one store.

Every object becomes visible by one `rename(2)` of a finished temp file or directory, so a
reader sees all of it or nothing, and an interrupted pull leaves only debris in `tmp/` (swept
by `prune`). Writers of the same object serialize on an `flock` of a lock file per object;
pulls hold the store lock shared and `prune`/`rm` hold it exclusive, so a prune never deletes
what a running pull is about to reference. An image a process uses is held (shared) until
that process exits, so a size cap never evicts it (see usage.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def try_lock(path: Path, shared: bool = False) -> int | None:
    """The descriptor holding the lock (the caller closes it to release), or None when
    someone else holds a conflicting one: never waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


_held: dict[Path, int] = {}
_held_lock = threading.Lock()


def hold_for_process(path: Path) -> None:
    """Hold a shared lock on `path` until this process exits (waiting while someone holds
    it exclusively). Holding it twice is holding it once."""
    with _held_lock:
        if path in _held:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held[path] = fd


def write_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write `data` to `path` so that readers see the old content or the new, never a part."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="w-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, document: object, tmp_dir: Path) -> None:
    write_atomic(path, json.dumps(document, indent=1, sort_keys=True).encode(), tmp_dir)
