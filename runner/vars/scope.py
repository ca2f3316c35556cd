"""Which settings variables a job gets, in GitLab's order.

Levels, lowest first (a later definition of a key wins):

    instance < groups (the top group first, subgroups after) < project   (from the server)
    < the user's variables file < the project's variables file           (local, on top)

`protected` variables reach only pipelines of a protected ref. `environment_scope` is matched
against the job's environment name, as GitLab's `HasEnvironmentScope.on_environment` does: `*`
matches every job (also one without an environment), other scopes match a job whose
environment equals them or matches them as a glob where only `*` is special; a job without an
environment gets only `*` variables. Within one level, for the same key, `*` ranks lowest, a
glob next and the exact name highest.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runner.core.jobspec import Variable
from runner.vars.model import SettingsVariable


@dataclass(frozen=True)
class SettingsVariables:
    """Every level's variables, lowest level first, already filtered for the ref."""

    levels: tuple[tuple[SettingsVariable, ...], ...] = ()

    def for_environment(self, environment: str | None) -> list[Variable]:
        """The variables of a job with this environment (None: no environment), in order."""
        chosen: list[Variable] = []
        for level in self.levels:
            applying = [v for v in level if scope_matches(v.environment_scope, environment)]
            applying.sort(key=lambda v: _scope_rank(v.environment_scope, environment))
            chosen += [v.to_variable() for v in applying]
        return chosen

    @property
    def masked_values(self) -> tuple[str, ...]:
        return tuple(v.value for level in self.levels for v in level if v.masked)

    def __bool__(self) -> bool:
        return any(self.levels)


def scope_matches(scope: str, environment: str | None) -> bool:
    if scope == "*":
        return True
    if environment is None:
        return False
    return scope == environment or _glob(scope).fullmatch(environment) is not None


def _scope_rank(scope: str, environment: str | None) -> int:
    if scope == "*":
        return 0
    return 2 if scope == environment else 1


def _glob(scope: str) -> re.Pattern[str]:
    """GitLab turns the scope into an SQL LIKE pattern: `*` is any text, nothing else is."""
    return re.compile(".*".join(re.escape(part) for part in scope.split("*")), re.DOTALL)


def for_ref(levels: Sequence[Iterable[SettingsVariable]], protected_ref: bool) -> SettingsVariables:
    return SettingsVariables(
        tuple(tuple(v for v in level if protected_ref or not v.protected) for level in levels)
    )


def for_project(variables: Iterable[SettingsVariable], project_path: str) -> list[SettingsVariable]:
    """The user file's entries that apply to `project_path` (no `projects`: every project)."""
    return [
        v
        for v in variables
        if not v.projects or any(fnmatch.fnmatchcase(project_path, g) for g in v.projects)
    ]


def ref_is_protected(ref: str, patterns: Iterable[str]) -> bool:
    """GitLab's protected branch/tag names may hold `*` wildcards (`release/*`)."""
    return any(ref == p or _glob(p).fullmatch(ref) is not None for p in patterns)
