"""What the scheduler tells the build about one job's run, beyond the job itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuildContext:
    project_dir: Path  # the user's repository (never modified)
    state_dir: Path  # <project_dir>/.pyci (logs/ by reporters; artifacts/, cache/ by the build)
    upstream: tuple[str, ...] = ()  # jobs whose artifacts (and dotenv) this job receives
    artifacts_to_source: bool = False
    pipeline_file: str = ".gitlab-ci.yml"  # relative to the project: keys its artifacts
    attempt: int = 1
    default_timeout: float = 3600.0
    # where jobs' copies of the repository live; None: $PYCI_BUILDS_DIR, else
    # $XDG_CACHE_HOME/pyci/builds (see runner/build/workspace.py for why not inside the tree)
    builds_root: Path | None = None
    # `pyci shell`: after before_script, the script's shell becomes this command on the
    # terminal (an empty tuple: an interactive shell) instead of running `script:`
    debug_shell: tuple[str, ...] | None = None
    # where caches are kept; None: <state_dir>/cache (runner mode: one per project on the box)
    cache_dir: Path | None = None
