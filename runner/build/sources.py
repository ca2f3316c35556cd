"""Get sources: the job's own copy of the user's repository, as the work tree has it now.

A job must see what the user is about to commit, yet never touch the user's tree. So the copy
is a `git clone --shared` of the repository (objects borrowed through alternates, nothing
copied; only the checkout writes files), checked out detached at HEAD, then overlaid with the
uncommitted changes of tracked files (modified and staged files copied over, deleted ones
removed, new ones marked intent-to-add so they count as tracked). Untracked files stay behind,
as on GitLab. The copy is a real repository, so `git` inside the job works.

In a build (`workspace` given) that clone is made once per run and shared: see snapshot.py.
One `git status` per job tells whether the shared one still matches the work tree (git alone
decides: it is right on every file system, a file watcher is not); the job then gets a
copy-on-write overlay (root) or a copy of it.

A folder that is no git repository is copied whole (except `.pyci/`).
`GIT_STRATEGY`: `clone` and `fetch` both give this fresh copy (a local clone costs no more than
a fetch, and a fresh copy leaves nothing over from earlier runs); `none` and `empty` give an
empty project directory. `GIT_CHECKOUT=false` leaves the clone without a checkout.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runner import gitrepo
from runner.build import snapshot as snapshots
from runner.build.joblog import BuildLog
from runner.build.workspace import Workspace
from runner.state_dir import STATE_DIR_NAME


class SourcesError(Exception):
    """The copy could not be made (a git command failed): a system failure of the job."""


@dataclass(frozen=True)
class SourceCopy:
    kind: str  # "git", "plain" or "none"
    head: str | None = None
    overlaid: int = 0  # uncommitted changes applied
    # for non-git copies: the files the job started with, to tell which ones it made
    baseline: frozenset[str] | None = None
    # the run's shared checkout this copy is a view of; released when the job's dir is gone
    snapshot: snapshots.Snapshot | None = None


def _git(cwd: Path, command: str, *args: str) -> bytes:
    """The output of `git <command> <args>` run in `cwd` (through gitpython, runner.gitrepo);
    SourcesError naming the command when it fails."""
    status, out, err = gitrepo.run(cwd, command, *args)
    # `git checkout` can report unreadable objects on stderr and still exit 0
    if status != 0 or "\nerror: " in "\n" + err:
        shown = " ".join((command, *args))
        raise SourcesError(f"git {shown}: {err.strip() or f'exit code {status}'}")
    return out


def repository_root(project: Path) -> Path | None:
    """The top of the git work tree `project` is in, or None for a plain folder."""
    if not have_git():
        return None
    return gitrepo.work_tree(project)


def _root_and_head(project: Path) -> tuple[Path | None, str | None]:
    """The work tree's top and HEAD's commit (None before the first commit)."""
    repo = gitrepo.repository(project) if have_git() else None
    if repo is None or not repo.working_tree_dir:
        return None, None
    try:
        return Path(repo.working_tree_dir), repo.head.commit.hexsha
    except ValueError:  # an unborn branch: no commit yet
        return Path(repo.working_tree_dir), None
    finally:
        repo.close()


_roots: dict[Path, Path | None] = {}  # project dir -> top of its work tree (None: no git)
_roots_lock = threading.Lock()


def _cached_root(project: Path) -> Path | None:
    # where a work tree's top is does not change while pyci runs: asked once per project
    with _roots_lock:
        if project not in _roots:
            _roots[project] = repository_root(project)
        return _roots[project]


@dataclass(frozen=True)
class _TreeState:
    """HEAD and the uncommitted changes of tracked files, from one `git status`."""

    head: str | None
    changed: tuple[str, ...]  # paths that differ from HEAD (index or work tree)
    added: frozenset[str]  # new in the index (staged or intent-to-add)
    raw: bytes

    def key(self, root: Path) -> tuple[object, ...]:
        # the status line of a file the user edits again stays the same: its stat does not
        stats = []
        for rel in self.changed:
            try:
                st = os.lstat(root / rel)
                stats.append((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode))
            except OSError:
                stats.append(None)
        return (str(root), self.head, self.raw, tuple(stats))


_STATUS = (
    *("--porcelain=v2", "-z", "--branch", "--no-ahead-behind"),
    *("--untracked-files=no", "--no-renames"),
)


def _status_args(root: Path, project: Path) -> tuple[str, ...]:
    """`git status` options and pathspec: pyci's own `.pyci/` beside the pipeline file is left
    out even where the repository tracks it (pyci writes logs there between jobs: counted, it
    made every job a new checkout)."""
    try:
        state_dir = (Path(project).resolve() / STATE_DIR_NAME).relative_to(root)
    except ValueError:  # the project dir is outside the work tree: nothing to leave out
        return _STATUS
    return (*_STATUS, "--", ".", f":(top,exclude){state_dir.as_posix()}")


def _tree_state(root: Path, project: Path) -> _TreeState:
    return _parse_status(_git(root, "status", *_status_args(root, project)))


def _parse_status(out: bytes) -> _TreeState:
    head: str | None = None
    changed: list[str] = []
    added: set[str] = set()
    for item in out.split(b"\0"):
        if item.startswith(b"# branch.oid "):
            oid = item[len(b"# branch.oid ") :].decode()
            head = None if oid == "(initial)" else oid
        elif item[:2] in (b"1 ", b"u "):
            # "1 XY sub mH mI mW hH hI path", "u XY sub m1 m2 m3 mW h1 h2 h3 path"
            fields = item.split(b" ", 8 if item[:1] == b"1" else 10)
            path = os.fsdecode(fields[-1])
            changed.append(path)
            if b"A" in fields[1]:
                added.add(path)
    return _TreeState(head, tuple(changed), frozenset(added), out)


class TreeProbe:
    """The status of the user's work tree for a job: one `git status`, started early (when
    the build begins) so that it runs while the build prepares the executor and the
    variables; `get_sources` collects it. `discard()` reaps an unused git; safe to call
    twice."""

    def __init__(self, project: Path) -> None:
        self.root = _cached_root(project) if have_git() else None
        # gitpython's handle of the running git (dropping it ends the process): kept until read
        self._running: Any = None
        self._state: _TreeState | None = None
        if self.root is not None:
            status_args = _status_args(self.root, project)
            self._running = gitrepo.command(self.root).status(*status_args, as_process=True)

    def result(self) -> _TreeState:
        if self._state is not None:
            return self._state
        assert self._running is not None and self.root is not None
        out, err = self._running.proc.communicate()
        code, self._running = self._running.proc.returncode, None
        if code != 0:
            message = err.decode(errors="replace").strip() or f"exit code {code}"
            raise SourcesError(f"git status {' '.join(_STATUS)}: {message}")
        self._state = _parse_status(out)
        return self._state

    def discard(self) -> None:
        if self._running is not None:
            self._running.proc.communicate()  # a status of a local tree: it ends soon
            self._running = None


_which_cache: dict[tuple[str, str], str | None] = {}


def cached_which(program: str) -> str | None:
    """shutil.which, remembered per PATH (a stat per PATH entry, for every job otherwise)."""
    key = (program, os.environ.get("PATH", ""))
    if key not in _which_cache:
        _which_cache[key] = shutil.which(program)
    return _which_cache[key]


def have_git() -> bool:
    return cached_which("git") is not None


def get_sources(
    project: Path,
    dest: Path,
    log: BuildLog,
    strategy: str = "clone",
    checkout: bool = True,
    submodules: str = "none",
    workspace: Workspace | None = None,
    probe: TreeProbe | None = None,
) -> SourceCopy:
    """The job's copy of `project` at `dest`. With `workspace` (whose project dir `dest` is),
    a view of the run's shared checkout; without, a clone of its own. `probe`: the work
    tree's status, started earlier (else asked now)."""
    strategy = (strategy or "clone").lower()
    if strategy in ("none", "empty"):
        dest.mkdir(parents=True, exist_ok=True)
        log.notice("Skipping Git repository setup")
        return SourceCopy("none", baseline=frozenset())
    if strategy not in ("clone", "fetch"):
        log.warning(f"GIT_STRATEGY {strategy!r} is not known; using clone")
    if workspace is not None and checkout and have_git():
        probe = probe if probe is not None and probe.root is not None else TreeProbe(project)
        root = probe.root
        if root is not None:
            state = probe.result()
            if state.head:
                copy = _shared_copy(root, state, workspace, log)
                _submodules(submodules, root, dest, log)
                return copy
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
    _git(dest, "checkout", "--quiet", "--detach", head)
    overlaid = _overlay_changes(root, dest, _tree_state(root, project))
    if overlaid:
        log.notice(f"Copying {overlaid} uncommitted change(s) of tracked files...")
    _submodules(submodules, root, dest, log)
    return SourceCopy("git", head=head, overlaid=overlaid)


class Notices(Protocol):
    def notice(self, text: str) -> None: ...


def shared_checkout(
    root: Path, state: _TreeState, project_builds: Path, log: Notices
) -> tuple[snapshots.Snapshot, bool]:
    """The run's checkout of `root` as `state` describes it, and whether it was built now
    (else another job, or `pyci run` while loading the pipeline, built it)."""
    assert state.head is not None
    head = state.head

    def build(holder: Path) -> tuple[Path, str, int]:
        tree = holder / "tree"
        if not _brought_up_to(tree, head, log):
            log.notice(f"Cloning repository from {root}...")
            _git(holder, "clone", "--quiet", "--shared", "--no-checkout", str(root), str(tree))
            log.notice(f"Checking out {head[:8]} as detached HEAD...")
            _git(tree, "checkout", "--quiet", "--detach", head)
        overlaid = _overlay_changes(root, tree, state)
        if overlaid:
            log.notice(f"Copying {overlaid} uncommitted change(s) of tracked files...")
        return tree, head, overlaid

    built = []
    shared = snapshots.acquire(
        project_builds, state.key(root), lambda holder: built.append(1) or build(holder)
    )
    return shared, bool(built)


def _brought_up_to(tree: Path, head: str, log: Notices) -> bool:
    """Bring a checkout kept from an earlier run to `head`, without the changes it had: git
    rewrites only the files that differ, so the cost follows what changed. False when there
    is no usable checkout (then it is cloned again)."""
    if not (tree / ".git").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        return False
    log.notice(f"Updating the kept checkout to {head[:8]} (detached HEAD)...")
    try:
        _git(tree, "reset", "--quiet", "--hard", head)  # objects: shared with the repository
        _git(tree, "clean", "--quiet", "-ffdx")  # what the last run's changes added
    except SourcesError:
        shutil.rmtree(tree, ignore_errors=True)
        return False
    return True


def _shared_copy(root: Path, state: _TreeState, ws: Workspace, log: BuildLog) -> SourceCopy:
    shared, built = shared_checkout(root, state, ws.job_dir.parent, log)
    if not built:
        log.notice(f"Reusing this run's checkout of {shared.head[:8]} from {root}")
    try:
        how = snapshots.private_view(shared, ws)
    except BaseException:
        shared.release()
        raise
    if how == "overlay":
        log.notice("Using a copy-on-write overlay of the checkout")
    else:
        log.notice("Using a copy of the checkout")
    return SourceCopy("git", head=shared.head, overlaid=shared.overlaid, snapshot=shared)


def _submodules(submodules: str, root: Path, dest: Path, log: BuildLog) -> None:
    """`GIT_SUBMODULE_STRATEGY`: `normal` gives the job the submodules of the repository,
    `recursive` theirs too, each at the commit the job's tree records (gitlab-runner's
    `git submodule update --init`). They come from the checkout pyci copies from (the user's,
    or in runner mode the one fetched from the server): a `git clone --shared` of each, so no
    object is copied and nothing is fetched from anywhere else."""
    strategy = submodules.lower()
    if strategy not in ("normal", "recursive"):
        if strategy not in ("none", ""):
            log.warning(f"GIT_SUBMODULE_STRATEGY {submodules!r} is not known; skipped")
        log.notice("Skipping Git submodules setup")
        return
    log.notice(
        "Updating/initializing submodules"
        + (" recursively..." if strategy == "recursive" else "...")
    )
    _copy_submodules(root, dest, recursive=strategy == "recursive", log=log)


def _copy_submodules(root: Path, dest: Path, *, recursive: bool, log: BuildLog) -> None:
    if not (dest / ".gitmodules").is_file():
        return
    listed = _git(dest, "ls-files", "-z", "--stage")
    for entry in _split_z(listed):
        meta, _, path = entry.partition("\t")
        mode, sha = meta.split()[:2]
        if mode != "160000":  # a gitlink: a submodule recorded at commit `sha`
            continue
        source = root / path
        if not (source / ".git").exists():
            log.warning(
                f"Submodule {path}: not checked out in {root} (run `git submodule update "
                "--init` there); left empty"
            )
            continue
        target = dest / path
        target.mkdir(parents=True, exist_ok=True)
        if any(target.iterdir()):
            continue  # already there (a kept view)
        _git(dest, "clone", "--quiet", "--shared", "--no-checkout", str(source), str(target))
        status, _out, err = gitrepo.run(target, "checkout", "--quiet", "--detach", sha)
        if status != 0:
            raise SourcesError(
                f"submodule {path}: commit {sha[:8]} is not in {source} ({err.strip()}); "
                "update the submodule there"
            )
        log.notice(f"Submodule {path} at {sha[:8]}")
        if recursive:
            _copy_submodules(source, target, recursive=True, log=log)


def _split_z(data: bytes) -> list[str]:
    return [os.fsdecode(p) for p in data.split(b"\0") if p]


def _overlay_changes(root: Path, dest: Path, state: _TreeState) -> int:
    changed, added = state.changed, state.added
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
    files = _split_z(_git(root, "ls-files", "-z", "--cached"))
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
        return sorted(_split_z(_git(project_dir, "ls-files", "--others", "-z")))
    baseline = copy.baseline or frozenset()
    found = []
    for dirpath, _dirnames, filenames in os.walk(project_dir):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), project_dir)
            if rel not in baseline:
                found.append(rel)
    return sorted(found)
