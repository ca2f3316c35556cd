"""One CI/CD settings variable, with the fields of GitLab's variables API, and its checks.

The same record comes from a variables file (`.pyci/variables.yml`, the user's file) or from
the server (`GET /projects/:id/variables`, `GET /groups/:id/variables`). `level` says where it
came from; precedence between levels is runner.vars.scope's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from runner.core.jobspec import Variable

KEY_PATTERN = re.compile(r"[A-Za-z0-9_]{1,255}")  # GitLab's rule for a variable's key
VARIABLE_TYPES = ("env_var", "file")
MIN_MASKED_LENGTH = 8
# fields of the API that pyci reads; the others it accepts and leaves alone
FIELDS = {"key", "value", "variable_type", "masked", "protected", "raw", "environment_scope"}
IGNORED_FIELDS = {"description", "hidden", "masked_and_hidden"}


@dataclass(frozen=True)
class SettingsVariable:
    key: str
    value: str
    level: str  # where it came from, for messages: "project file", "group a/b", ...
    variable_type: str = "env_var"
    masked: bool = False
    protected: bool = False
    raw: bool = False
    environment_scope: str = "*"
    projects: tuple[str, ...] = ()  # the user file's project path globs (empty: every project)

    def to_variable(self) -> Variable:
        return Variable(
            self.key,
            self.value,
            file=self.variable_type == "file",
            masked=self.masked,
            raw=self.raw,
        )


class VariableProblem(ValueError):
    """What is wrong with one entry; `field` names the key it is about (None: the entry)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def from_fields(entry: Any, level: str, *, allow_projects: bool) -> SettingsVariable:
    """One entry (a mapping as the API returns it) checked as GitLab checks it."""
    if not isinstance(entry, dict):
        raise VariableProblem("expected a mapping with `key` and `value`")
    known = FIELDS | IGNORED_FIELDS | ({"projects"} if allow_projects else set())
    for name in entry:
        if name not in known:
            raise VariableProblem(f"unknown field `{name}`", str(name))
    key = entry.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise VariableProblem(
            "`key` must be 1-255 letters, digits or underscores", "key" if "key" in entry else None
        )
    if "value" not in entry:
        raise VariableProblem(f"{key}: `value` is missing")
    value = _text(entry["value"], key, "value")
    variable_type = entry.get("variable_type", "env_var")
    if variable_type not in VARIABLE_TYPES:
        raise VariableProblem(f"{key}: `variable_type` must be env_var or file", "variable_type")
    flags = {name: _flag(entry, name, key) for name in ("masked", "protected", "raw")}
    scope = _text(entry.get("environment_scope", "*"), key, "environment_scope") or "*"
    if flags["masked"] and (len(value) < MIN_MASKED_LENGTH or "\n" in value):
        raise VariableProblem(
            f"{key}: a masked value must be a single line of at least {MIN_MASKED_LENGTH} "
            "characters",
            "value",
        )
    projects = entry.get("projects", [])
    if isinstance(projects, str):
        projects = [projects]
    if not isinstance(projects, list) or not all(isinstance(p, str) and p for p in projects):
        raise VariableProblem(f"{key}: `projects` must be a list of project path globs", "projects")
    return SettingsVariable(
        key,
        value,
        level,
        variable_type,
        environment_scope=scope,
        projects=tuple(projects),
        **flags,
    )


def _text(value: Any, key: str, field: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise VariableProblem(f"{key}: `{field}` must be a string", field)
    return str(value)


def _flag(entry: dict[str, Any], name: str, key: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise VariableProblem(f"{key}: `{name}` must be true or false", name)
    return value
