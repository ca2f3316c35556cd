"""What `changes:` compares against in a local run.

GitLab compares a push with the commit before it, and a merge request with its target; a local
run has neither, so pyci takes the closest question a developer means when running locally:
"what does my work change?"

- the base is `compare_to` when given (GitLab also diffs from the merge base with it); else,
  off the default branch, the merge base with the default branch (local, or the remote's); on
  the default branch, the merge base with its upstream (what a push would send);
- the changed files are those between that base and HEAD, plus every uncommitted change
  (staged, unstaged, and untracked files that are not ignored), renames counting as both names;
- with no base at all (no repository, no commit, the default branch without upstream), the
  answer is None, and GitLab's rule for pipelines without a diff applies: `changes` is true.
"""

from __future__ import annotations

from pathlib import Path

from runner import gitrepo

__all__ = ["ChangesError", "local_changed_files"]


class ChangesError(ValueError):
    """`compare_to` names no commit (GitLab: 'rules:changes:compare_to is not a valid ref')."""


def _git(root: Path, command: str, *args: str) -> str | None:
    """The output of `git <command> <args>` in `root` (runner.gitrepo); None if it failed."""
    out = gitrepo.output(root, command, *args)
    return None if out is None else out.decode("utf-8", "surrogateescape")


def _lines(output: str | None) -> set[str]:
    return {line for line in (output or "").split("\0") if line}


def _commit(root: Path, ref: str) -> str | None:
    out = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return out.strip() if out else None


def _default_base_ref(root: Path) -> str | None:
    """The default branch when HEAD is another branch, else HEAD's upstream (or None)."""
    branch = (_git(root, "symbolic-ref", "--quiet", "--short", "HEAD") or "").strip()
    remote_head = _git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    candidates = [remote_head.strip()] if remote_head else []
    candidates += ["main", "master", "origin/main", "origin/master"]
    default = next((c for c in candidates if _commit(root, c)), None)
    if default and branch and branch != default.removeprefix("origin/"):
        return default
    upstream = (_git(root, "rev-parse", "--abbrev-ref", "@{upstream}") or "").strip()
    return upstream or None


def _changed(root: Path, compare_to: str | None) -> frozenset[str] | None:
    if compare_to is not None:
        base_ref: str | None = compare_to
        if _commit(root, compare_to) is None:
            raise ChangesError("rules:changes:compare_to is not a valid ref")
    else:
        base_ref = _default_base_ref(root)
    if base_ref is None:
        return None
    base = (_git(root, "merge-base", base_ref, "HEAD") or "").strip()
    if not base:
        return None
    files = _lines(_git(root, "diff", "-z", "--name-only", "--no-renames", base, "HEAD"))
    files |= _lines(_git(root, "diff", "-z", "--name-only", "--no-renames", "HEAD"))
    files |= _lines(_git(root, "ls-files", "-z", "--others", "--exclude-standard"))
    return frozenset(files)


def local_changed_files(project_dir: Path, compare_to: str | None = None) -> frozenset[str] | None:
    """Paths (relative to the repository root) changed by the local work; None: unknown."""
    root_out = _git(Path(project_dir), "rev-parse", "--show-toplevel")
    if root_out is None:
        if compare_to is not None:
            raise ChangesError("rules:changes:compare_to is not a valid ref")
        return None
    root = Path(root_out.strip())
    if _commit(root, "HEAD") is None:
        if compare_to is not None:
            raise ChangesError("rules:changes:compare_to is not a valid ref")
        return None
    return _changed(root, compare_to)
