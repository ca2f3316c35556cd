"""The stage list of a pipeline and the check that every job names one of its stages.

GitLab always wraps the declared stages in `.pre` (first) and `.post` (last), whether or not the
user lists them, and falls back to `build, test, deploy` when `stages:` is absent. A job without
`stage:` goes to `test`. Stage indexes handed to the scheduler are positions in this full
list. (That every job names a known stage is checked by runner.config.validate.)
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_STAGES = ("build", "test", "deploy")
DEFAULT_JOB_STAGE = "test"
PRE, POST = ".pre", ".post"


def resolve_stages(declared: Iterable[str] | None) -> tuple[str, ...]:
    """`.pre`, the declared stages (or GitLab's defaults) without duplicates, then `.post`."""
    names = DEFAULT_STAGES if declared is None else tuple(declared)
    middle: list[str] = []
    for name in names:
        # GitLab accepts `.pre`/`.post` in the list but always puts them at the ends
        if name in (PRE, POST) or name in middle:
            continue
        middle.append(name)
    return (PRE, *middle, POST)


def only_edge_stages(stage_names: Iterable[str]) -> bool:
    """Whether every created job sits in `.pre` or `.post` (GitLab then creates no pipeline)."""
    return all(name in (PRE, POST) for name in stage_names)
