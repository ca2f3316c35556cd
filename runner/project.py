"""What a pipeline is read for: the project, its pipeline file, the pipeline variables of the
command line, where server-side includes and settings variables come from. Owned by the
pipeline layer (runner/pipeline.py and what it calls); the commands build it from their
arguments (runner/commands/common.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config.remote_includes import IncludeOptions
from runner.vars.source import SettingsSource


@dataclass(frozen=True)
class ProjectOptions:
    """Where the project is and what the user set on the command line."""

    directory: Path  # the repository (or plain folder) the pipeline runs for
    file: Path  # the root .gitlab-ci.yml, absolute
    variables: dict[str, str]  # --variable KEY=VALUE, in order; later ones win
    includes: IncludeOptions = field(default_factory=IncludeOptions)  # server-side includes
    # CI/CD settings variables (variables files, --gitlab-variables); None: none at all
    settings: SettingsSource | None = None
    # git facts to plan with instead of the checkout's (`pyci reproduce`: the original ref)
    git_facts: Any = None
