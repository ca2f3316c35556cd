"""Reading one configuration file's text, safely: bounded, regular files only, UTF-8.

A repository is untrusted input, and its `.gitlab-ci.yml` may be anything a checkout can hold: a
symlink to itself or to `/dev/zero`, a FIFO that blocks whoever opens it, or a file of
gigabytes. The file is opened without blocking (a symlink loop fails there, with ELOOP),
checked with `fstat` on the open descriptor (so what is checked is what is read), and read up to
one byte past the limit. Every failure is one sentence, for the caller to place.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from runner.config.limits import MAX_FILE_BYTES


class UnreadableFile(Exception):
    """The file cannot be used as configuration; the message says why, in one sentence."""


def read_config_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The text of the regular file at `path`, at most `limit` bytes of UTF-8."""
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(_why(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"cannot read the file: it is {_kind(info.st_mode)}")
        if info.st_size > limit:
            raise UnreadableFile(_too_big(info.st_size, limit))
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise UnreadableFile(_why(exc)) from exc
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew between fstat and read
        raise UnreadableFile(_too_big(len(data), limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile("the file is not UTF-8 text") from exc


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _too_big(size: int, limit: int) -> str:
    return f"the file is too big: {size:,} bytes, at most {limit:,} are read"


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "cannot read the file: it is a symbolic link that loops"
    return f"cannot read the file: {exc.strerror or exc}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
