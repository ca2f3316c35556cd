"""Directories that only their owner may enter: where pyci keeps what jobs wrote.

A job's upper dir, its builds dir and an image's extracted layers hold files that untrusted
code chose: setuid-root binaries, device nodes with mode 0666. On the host they are real
files, so any local user who can walk to them can run them (euid 0) or open them. Docker
keeps such state under `/var/lib/docker` (0710/0700 root); pyci keeps each root of its state
(`$PYCI_RUN_DIR`, `$PYCI_HOME`, the builds root) at mode 0700, owned by whoever runs pyci.

`private_dir` is the one place that makes, checks and repairs such a root: it creates the
directory 0700, tightens one of ours that is more open (left by an older pyci, or made by
hand), and refuses one that belongs to someone else, since its owner could swap what is
inside under our feet. Everything below a private root needs no mode of its own.

A private root does not get in the way of a container running as a non-root user: overlayfs
looks up and opens its lower and upper dirs with the credentials of whoever mounted it (root),
and bind mounts are resolved once, by root, so no job process ever walks the host path.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from runner.core.errors import PyciError

PRIVATE_MODE = 0o700


class StateDirError(PyciError, PermissionError):
    """A state directory pyci may not use: someone else's, or not a directory. It is an
    `OSError` too, so a build reports it as a system failure of the job, in one line."""


def private_dir(path: Path) -> Path:
    """Make sure `path` is a directory owned by this process's user with mode 0700.

    Missing: created (ancestors with ordinary modes). Ours but open to others: chmod 0700.
    Someone else's, or a symlink someone else planted: `StateDirError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, PRIVATE_MODE)
    me = os.geteuid()
    link = os.lstat(path)
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (me, 0):
        raise StateDirError(f"{path}: is a symlink owned by uid {link.st_uid}; not using it")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise StateDirError(f"{path}: is not a directory") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != me:
            raise StateDirError(
                f"{path}: owned by uid {info.st_uid}, not by this user (uid {me}); pyci keeps "
                "its state only in a directory it owns (chown it, or choose another)"
            )
        if stat.S_IMODE(info.st_mode) != PRIVATE_MODE:
            os.fchmod(fd, PRIVATE_MODE)  # through the descriptor: the directory we checked
    finally:
        os.close(fd)
    return path
