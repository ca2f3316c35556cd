"""Choose files of a job's project dir by GitLab's rules and copy them as a tree.

Shared by artifacts and cache: `paths` (doublestar globs; a directory brings its whole tree),
`exclude` (checked against every file and directory on its own, as gitlab-runner's archiver
does: excluding `dir` drops only the entry, `dir/**` drops what is inside), `untracked`.
"""

from __future__ import annotations

import os
import shutil
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


def copy_entries(source: Path, dest: Path, entries: Sequence[str]) -> int:
    """Copy the chosen entries from `source` to `dest` keeping their relative paths
    (links stay links, modes and times kept); returns the number of files copied."""
    files = 0
    for rel in entries:
        src, dst = source / rel, dest / rel
        if src.is_dir() and not src.is_symlink():
            dst.mkdir(parents=True, exist_ok=True)
            continue
        if not os.path.lexists(src):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        shutil.copy2(src, dst, follow_symlinks=False)
        files += 1
    return files


def copy_tree(source: Path, dest: Path) -> int:
    """Copy everything under `source` onto `dest` (files replaced, others kept)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        for name in (*dirnames, *filenames):
            entries.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return copy_entries(source, dest, entries)
