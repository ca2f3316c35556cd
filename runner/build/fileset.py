"""Choose files of a job's project dir by GitLab's rules and copy them as a tree.

Shared by artifacts and cache: `paths` (doublestar globs; a directory brings its whole tree),
`exclude` (checked against every file and directory on its own, as gitlab-runner's archiver
does: excluding `dir` drops only the entry, `dir/**` drops what is inside), `untracked`.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.build import globs
from runner.build.joblog import BuildLog


def select(
    project_dir: Path,
    paths: Sequence[str],
    exclude: Sequence[str],
    untracked: Callable[[], list[str]] | None,
    log: BuildLog,
) -> list[str]:
    """Relative paths chosen, sorted; logs what each pattern found, like gitlab-runner."""
    chosen: set[str] = set()
    excluded: dict[str, int] = {}

    def consider(rel: str) -> bool:
        for pattern in exclude:
            if globs.match(pattern.removeprefix("./"), rel):
                excluded[pattern] = excluded.get(pattern, 0) + 1
                return False
        chosen.add(rel)
        return True

    for pattern in paths:
        if not pattern.strip():
            log.warning("No matching files. Path is empty.")
            continue
        found = sum(consider(rel) for rel in globs.find_paths(project_dir, pattern))
        if found:
            log.line(f"{pattern}: found {found} matching artifact files and directories")
        else:
            log.warning(
                f"{pattern}: no matching files. Ensure that the artifact path is relative to "
                f"the working directory ({project_dir})"
            )
    if untracked is not None:
        found = sum(consider(rel) for rel in untracked())
        if found:
            log.line(f"untracked: found {found} files")
        else:
            log.warning("untracked: no files")
    for pattern, count in excluded.items():
        log.line(f"{pattern}: excluded {count} files")
    return sorted(chosen)


def open_job_file(project_dir: Path, rel: str) -> int | None:
    """A read-only descriptor of the regular file `rel` of a job's tree, or None when it is
    not one: a symlink (or a directory on the way) leading out of the tree, a device node, a
    FIFO. The job wrote this tree and pyci reads it as root on the host: `build.env ->
    /etc/shadow` must not put the host's secrets into variables, nor a char device `1:1`
    copy the host's memory, nor a FIFO hang the upload."""
    root = os.path.realpath(project_dir)
    real = os.path.realpath(os.path.join(root, rel))
    if not real.startswith(root + os.sep):
        return None
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_job_file(project_dir: Path, rel: str) -> bytes | None:
    """The content of a job's regular file (see `open_job_file`), or None."""
    fd = open_job_file(project_dir, rel)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as source:
        return source.read()


def copy_job_file(project_dir: Path, rel: str, dst: Path) -> bool:
    """Copy a job's regular file (see `open_job_file`) to `dst`, with its mode and times but
    never setuid/setgid (a setuid-root artifact would be root's on the host); False when
    `rel` is not a regular file of the tree."""
    fd = open_job_file(project_dir, rel)
    if fd is None:
        return False
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        with open(dst, "wb") as out:
            shutil.copyfileobj(source, out)
    os.chmod(dst, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
    os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
    return True


def copy_entries(source: Path, dest: Path, entries: Sequence[str]) -> int:
    """Copy the chosen entries from `source` to `dest` keeping their relative paths
    (links stay links, modes and times kept, setuid/setgid dropped); returns the number of
    files copied. Devices, FIFOs and sockets are skipped, as gitlab-runner's archiver skips
    what is not a file, directory or symlink; nothing is read or written through a symlink
    that leads out of `source` or `dest`."""
    files = 0
    dest_root = os.path.realpath(dest)
    for rel in entries:
        src, dst = source / rel, dest / rel
        try:
            info = os.lstat(src)
        except FileNotFoundError:
            continue
        if not _inside(dest_root, dst.parent):
            continue  # a symlink of the tree it lands in (a repository's) leads elsewhere
        if stat.S_ISDIR(info.st_mode):
            dst.mkdir(parents=True, exist_ok=True)
            continue
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(src), dst)
            os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
        elif not copy_job_file(source, rel, dst):
            continue
        files += 1
    return files


def _inside(root_real: str, directory: Path) -> bool:
    """`directory`, with every symlink resolved, is `root_real` or below it."""
    real = os.path.realpath(directory)
    return real == root_real or real.startswith(root_real + os.sep)


def copy_tree(source: Path, dest: Path) -> int:
    """Copy everything under `source` onto `dest` (files replaced, others kept)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        for name in (*dirnames, *filenames):
            entries.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return copy_entries(source, dest, entries)
