"""Mount targets resolved inside the container's root, never on the host.

An image is untrusted input: its `/builds`, `/etc` or `/etc/hosts` may be a symbolic link to
`/home/user` or to `../../../etc`. Resolved as a host path (`root + "/etc/hosts"`), such a
link sends pyci's mkdir, file creation and mount to the host. As runc does (securejoin, then
`openat2`), every target here is opened through `openat2(RESOLVE_IN_ROOT)` relative to a file
descriptor of the new root: absolute links and `..` stop at that root, so a link to
`/home/user` means `<root>/home/user`. Missing parts are created one component at a time
relative to an already-resolved parent (`mkdirat`, `O_CREAT | O_EXCL`, neither of which follows
a link), and a dangling link is followed inside the root the same way.

The caller mounts onto `/proc/self/fd/N` (or `move_mount` onto the descriptor) of the opened
target, so the mount lands on exactly what was resolved.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Literal

from executors.linux import syscalls
from executors.linux.syscalls import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
)

Kind = Literal["dir", "file"]

# the kernel's own limit on links followed in one lookup (MAXSYMLINKS)
_MAX_LINKS = 40
# each round creates one component or follows one link: a bound on hostile layouts
_MAX_ROUNDS = 256
_EAGAIN_RETRIES = 64
_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC


class MountTargetError(ValueError):
    """The image's file system does not allow a mount at this path (wrong type, loop)."""


def open_root(root: str) -> int:
    """An O_PATH descriptor of the new root (after its overlay is mounted)."""
    return os.open(root, _PATH_FLAGS | os.O_DIRECTORY)


def open_target(root_fd: int, path: str, kind: Kind, create: bool = True) -> int | None:
    """An O_PATH descriptor of `path` (absolute, in the container) resolved inside the root.

    Missing components are created (directories, and a regular file for a `file` target)
    when `create`; else a missing target gives None. Raises MountTargetError when what exists
    is of the wrong type or links loop."""
    current = _components(path)
    links = 0
    for _round in range(_MAX_ROUNDS):
        try:
            fd = _openat2(root_fd, "/".join(current) or ".", _PATH_FLAGS, _RESOLVE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                why = "its links loop, or one is a /proc magic link"
                raise MountTargetError(f"mount target {path}: {why}") from exc
            if exc.errno == errno.ENOTDIR:
                raise MountTargetError(
                    f"mount target {path}: a part of it is not a directory"
                ) from exc
            if exc.errno != errno.ENOENT:
                raise
        else:
            return _checked(fd, path, kind)
        if not create:
            return None
        parent_fd, name, rest = _first_missing(root_fd, current, path)
        try:
            target = os.readlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            _create(parent_fd, name, kind if not rest else "dir")
            continue
        except OSError as exc:
            raise MountTargetError(f"mount target {path}: {name!r} is not a directory") from exc
        finally:
            os.close(parent_fd)
        # a dangling link: go on from where it points, still inside the root
        links += 1
        if links > _MAX_LINKS:
            raise MountTargetError(f"mount target {path}: too many levels of symbolic links")
        base = [] if target.startswith("/") else current[: len(current) - len(rest) - 1]
        current = [*base, *_components(target, relative_ok=True), *rest]
    raise MountTargetError(f"mount target {path}: the image's links make it too deep to resolve")


def open_plain_dir(root_fd: int, name: str) -> int:
    """An O_PATH descriptor of `/<name>` (one component), made if missing, which must be a
    directory and not a link. For /proc, /sys and /dev, as runc insists for proc and sysfs:
    a kernel file system mounted through an image's link would appear where the image chose."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=root_fd)
    flags = _PATH_FLAGS | os.O_DIRECTORY
    try:
        return _openat2(root_fd, name, flags, _RESOLVE | RESOLVE_NO_SYMLINKS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MountTargetError(
                f"mount point /{name}: the image has a symbolic link there"
            ) from exc
        if exc.errno == errno.ENOTDIR:
            raise MountTargetError(f"mount point /{name}: the image has a file there") from exc
        raise


def _openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    # with "..", RESOLVE_IN_ROOT gives EAGAIN when any rename or mount anywhere on the host
    # raced with the lookup (it cannot then prove the root was not escaped): try again
    for _attempt in range(_EAGAIN_RETRIES):
        try:
            return syscalls.openat2(dir_fd, path, flags, resolve)
        except BlockingIOError:
            continue
    return syscalls.openat2(dir_fd, path, flags, resolve)


def _components(path: str, relative_ok: bool = False) -> list[str]:
    if not (relative_ok or path.startswith("/")):
        raise MountTargetError(f"mount target {path}: not an absolute path")
    return [part for part in path.split("/") if part and part != "."]


def _first_missing(root_fd: int, parts: list[str], path: str) -> tuple[int, str, list[str]]:
    """(descriptor of the deepest existing directory, the first missing name, the rest)."""
    for depth in range(len(parts) - 1, -1, -1):
        if parts[depth] == "..":
            continue  # ".." always exists; the first missing name is further down
        try:
            parent = _openat2(
                root_fd, "/".join(parts[:depth]) or ".", _PATH_FLAGS | os.O_DIRECTORY, _RESOLVE
            )
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise
        return parent, parts[depth], parts[depth + 1 :]
    raise MountTargetError(f"mount target {path}: no existing parent inside the root")


def _create(parent_fd: int, name: str, kind: Kind) -> None:
    try:
        if kind == "dir":
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            # O_EXCL: never opens (or creates through) an existing link
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o644, dir_fd=parent_fd))
    except FileExistsError:
        pass  # made meanwhile, or a link: the next lookup sees which


def _checked(fd: int, path: str, kind: Kind) -> int:
    mode = os.fstat(fd).st_mode
    if (kind == "dir") == stat.S_ISDIR(mode) and (kind == "dir" or stat.S_ISREG(mode)):
        return fd
    os.close(fd)
    what = "a directory" if kind == "dir" else "a regular file"
    raise MountTargetError(f"mount target {path}: the image has something other than {what} there")


def fd_path(fd: int) -> str:
    """The path mount(2) accepts for an O_PATH descriptor: the kernel follows the magic link
    to exactly the resolved file, whatever happened to the path since."""
    return f"/proc/self/fd/{fd}"
