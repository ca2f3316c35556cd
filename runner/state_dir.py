"""The project's state directory, `.pyci/` beside the pipeline file: job logs, artifacts and
caches of local runs (as gitlab-ci-local keeps `.gitlab-ci-local/`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

STATE_DIR_NAME = ".pyci"
# `*` matches this file too: git then ignores the whole directory, and the user's own
# .gitignore needs no line for pyci
GITIGNORE_TEXT = "# made by pyci: nothing in .pyci/ belongs in git\n*\n"


def project_state_dir(project_dir: Path) -> Path:
    """`<project_dir>/.pyci`, made if missing, with its own `.gitignore` so that it never
    shows in `git status`. A project where it cannot be made (read-only) is not an error
    here: what writes into it (the log files) reports that, per job."""
    state_dir = project_dir / STATE_DIR_NAME
    with contextlib.suppress(OSError):
        state_dir.mkdir(exist_ok=True)
        ignore = state_dir / ".gitignore"
        if not ignore.exists():  # the user's own version of it stays
            ignore.write_text(GITIGNORE_TEXT)
    return state_dir
