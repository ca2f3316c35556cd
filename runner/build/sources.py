"""Get sources: the job's own copy of the user's repository, as the work tree has it now.

A job must see what the user is about to commit, yet never touch the user's tree. So the copy
is a `git clone --shared` of the repository (objects borrowed through alternates, nothing
copied; only the checkout writes files), checked out detached at HEAD, then overlaid with the
uncommitted changes of tracked files (`git diff HEAD`: modified and staged files copied over,
deleted ones removed, new ones marked intent-to-add so they count as tracked). Untracked files
stay behind, as on GitLab. The copy is a real repository, so `git` inside the job works.

A folder that is no git repository is copied whole (except `.pyci/`).
`GIT_STRATEGY`: `clone` and `fetch` both give this fresh copy (a local clone costs no more than
a fetch, and a fresh copy leaves nothing over from earlier runs); `none` and `empty` give an
empty project directory. `GIT_CHECKOUT=false` leaves the clone without a checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runner.build.joblog import BuildLog

STATE_DIR_NAME = ".pyci"


class SourcesError(Exception):
    """The copy could not be made (a git command failed): a system failure of the job."""


@dataclass(frozen=True)
class SourceCopy:
    kind: str  # "git", "plain" or "none"
    head: str | None = None
    overlaid: int = 0  # uncommitted changes applied
    # for non-git copies: the files the job started with, to tell which ones it made
    baseline: frozenset[str] | None = None


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    # no optional locks: git must not refresh (write) the index of the user's repository
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    result = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    # `git checkout` can report unreadable objects on stderr and still exit 0
    failed = result.returncode != 0 or b"\nerror: " in b"\n" + result.stderr
    if check and failed:
        err = result.stderr.decode(errors="replace").strip()
        raise SourcesError(f"git {' '.join(args)}: {err or f'exit code {result.returncode}'}")
    return result


def repository_root(project: Path) -> Path | None:
    """The top of the git work tree `project` is in, or None for a plain folder."""
    if shutil.which("git") is None:
        return None
    result = _git(project, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        return None
    return Path(result.stdout.decode().strip())


def _root_and_head(project: Path) -> tuple[Path | None, str | None]:
    """The work tree's top and HEAD's commit, in one git call where both exist."""
    if shutil.which("git") is None:
        return None, None
    both = _git(project, "rev-parse", "--show-toplevel", "HEAD", check=False)
    if both.returncode == 0:
        top, head = both.stdout.decode().split("\n")[:2]
        return Path(top), head
    return repository_root(project), None


def get_sources(
    project: Path,
    dest: Path,
    log: BuildLog,
    strategy: str = "clone",
    checkout: bool = True,
    submodules: str = "none",
) -> SourceCopy:
    strategy = (strategy or "clone").lower()
    if strategy in ("none", "empty"):
        dest.mkdir(parents=True, exist_ok=True)
        log.notice("Skipping Git repository setup")
        return SourceCopy("none", baseline=frozenset())
    if strategy not in ("clone", "fetch"):
        log.warning(f"GIT_STRATEGY {strategy!r} is not known; using clone")
    root, head = _root_and_head(project)
    if root is None:
        return _copy_plain(project, dest, log)
    if not head:
        log.warning("The repository has no commit yet; copying its tracked files without git")
        return _copy_listed(root, dest, log)
    log.notice(f"Cloning repository from {root}...")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _git(dest.parent, "clone", "--quiet", "--shared", "--no-checkout", str(root), str(dest))
    if not checkout:
        log.notice("Skipping Git checkout")
        return SourceCopy("git", head=head)
    log.notice(f"Checking out {head[:8]} as detached HEAD...")
    _git(dest, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", head)
    overlaid = _overlay_changes(root, dest)
    if overlaid:
        log.notice(f"Copying {overlaid} uncommitted change(s) of tracked files...")
    if submodules.lower() in ("normal", "recursive"):
        log.warning(f"GIT_SUBMODULE_STRATEGY={submodules} is not supported locally; skipped")
    else:
        log.notice("Skipping Git submodules setup")
    return SourceCopy("git", head=head, overlaid=overlaid)


def _split_z(data: bytes) -> list[str]:
    return [os.fsdecode(p) for p in data.split(b"\0") if p]


def _overlay_changes(root: Path, dest: Path) -> int:
    # -z --name-status: "<letter>\0<path>\0" for each change against HEAD
    fields = _split_z(_git(root, "diff", "HEAD", "--name-status", "--no-renames", "-z").stdout)
    changed = fields[1::2]
    added = {path for letter, path in zip(fields[::2], fields[1::2], strict=True) if letter == "A"}
    for rel in changed:
        source, target = root / rel, dest / rel
        if source.is_dir() and not source.is_symlink():
            continue  # a submodule (gitlink): not copied
        if target.is_symlink() or target.exists():
            target.unlink()
        if os.path.lexists(source):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    present = [rel for rel in sorted(added) if os.path.lexists(dest / rel)]
    if present:
        # new files the user has staged are tracked there, so they are tracked here too
        _git(dest, "add", "--intent-to-add", "--", *present)
    return len(changed)


def _copy_listed(root: Path, dest: Path, log: BuildLog) -> SourceCopy:
    files = _split_z(_git(root, "ls-files", "-z", "--cached").stdout)
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for rel in files:
        source = root / rel
        if not os.path.lexists(source) or (source.is_dir() and not source.is_symlink()):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / rel, follow_symlinks=False)
        copied.append(rel)
    return SourceCopy("plain", baseline=frozenset(copied))


def _copy_plain(project: Path, dest: Path, log: BuildLog) -> SourceCopy:
    log.notice(f"Copying {project} (not a git repository)...")
    shutil.copytree(
        project,
        dest,
        symlinks=True,
        ignore=lambda d, names: [STATE_DIR_NAME] if Path(d) == project else [],
    )
    baseline = {
        os.path.relpath(os.path.join(dirpath, name), dest)
        for dirpath, dirnames, filenames in os.walk(dest)
        for name in (*dirnames, *filenames)
    }
    return SourceCopy("plain", baseline=frozenset(baseline))


def untracked_files(project_dir: Path, copy: SourceCopy) -> list[str]:
    """Files the job's copy has that git does not track (GitLab's `untracked: true`):
    `git ls-files --others` (ignored files included, as gitlab-runner does), or, without
    git, every file that was not there when the job began."""
    if copy.kind == "git" and (project_dir / ".git").exists():
        return sorted(_split_z(_git(project_dir, "ls-files", "--others", "-z").stdout))
    baseline = copy.baseline or frozenset()
    found = []
    for dirpath, _dirnames, filenames in os.walk(project_dir):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), project_dir)
            if rel not in baseline:
                found.append(rel)
    return sorted(found)
