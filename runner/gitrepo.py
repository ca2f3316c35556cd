"""The one door to git: gitpython, for what it reads itself and for every command pyci runs.

`repository(path)` is the gitpython `Repo` holding `path` (found by walking up, as git does),
or None. `command(directory)` is gitpython's `Git` bound to a directory: `command(d).status(...)`
runs `git status ...` there. Commands pyci runs never take git's optional locks (a `git status`
must not rewrite the user's index while the user works), never prompt, and read git's output
in the C locale (gitpython sets it). gitpython raises `git.GitCommandError` for a failed
command. gitpython is imported on first use: importing it runs `git version`, and without a
git program at all it fails (pyci then copies plain folders: runner/build/sources.py).

GIT_DIR, GIT_WORK_TREE and GIT_INDEX_FILE are not honoured: pyci finds the repository from the
project directory, and `runner.cli` drops them at start (a git hook that runs pyci sets them to
the hook's repository, and git would then clone, check out and index the wrong one).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import git

__all__ = ["command", "output", "repository", "run", "work_tree"]

_QUIET = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}


def repository(path: Path) -> git.Repo | None:
    """The repository holding `path`; None when there is none (a plain folder)."""
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def work_tree(path: Path) -> Path | None:
    """The top of the work tree holding `path`; None outside one (or in a bare repository)."""
    repo = repository(path)
    if repo is None:
        return None
    try:
        return Path(repo.working_tree_dir) if repo.working_tree_dir else None
    finally:
        repo.close()


def command(directory: Path) -> git.Git:
    """git commands run in `directory`: `command(d).ls_files("-z")` is `git ls-files -z`."""
    import git

    runner = git.Git(str(directory))
    runner.update_environment(**_QUIET)
    return runner


NO_GIT = 127  # the status `run` gives when there is no git program (as a shell would)


def run(directory: Path, command_name: str, *args: str) -> tuple[int, bytes, str]:
    """`git <command_name> <args>` run in `directory`: its exit status, output, error text."""
    try:
        import git
    except ImportError as exc:  # gitpython found no git program
        return NO_GIT, b"", str(exc)
    try:
        return getattr(command(directory), command_name.replace("-", "_"))(
            *args,
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
        )
    except git.GitCommandNotFound as exc:  # git went away, or `directory` is missing
        return NO_GIT, b"", str(exc)


def output(directory: Path, command_name: str, *args: str) -> bytes | None:
    """What `git <command_name> <args>` printed in `directory`; None when it failed."""
    status, out, _err = run(directory, command_name, *args)
    return out if status == 0 else None
