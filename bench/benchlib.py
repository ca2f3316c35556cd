"""What the benchmarks share: a directory committed as a git repository, and a command that
runs pyci from another source tree (an older commit exported with `git archive`) so that two
designs are timed in one loop."""

from __future__ import annotations

from pathlib import Path

from tests.gitutil import git

# Runs `runner.cli.run` from the tree named first on the command line: the editable install's
# import hook (which would load this worktree whatever sys.path says) is taken out first.
TREE_WRAPPER = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
from runner.cli import run
sys.argv[0] = "pyci"
run()
"""


def pyci_from_tree(python: str, tree: str | Path) -> list[str]:
    """The argv prefix of `pyci` as the source tree `tree` has it."""
    return [python, "-c", TREE_WRAPPER, str(tree)]


def commit_all(path: Path, message: str = "bench") -> None:
    """Make `path` a repository on branch `main` with everything in it committed."""
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", message]):
        git(path, *command)
