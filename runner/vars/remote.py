"""A project's CI/CD variables as its GitLab server holds them (`--gitlab-variables`).

Read through the one GitLab client: the project's variables, those of every group above it
(the top group first, as subgroups override their parents), and the protected branches and
tags, to know whether the ref is protected. Instance variables need an administrator's token
(`GET /admin/ci/variables`): they are not read. Nothing here is written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.core.errors import ConfigError
from runner.gitlab.client import GitLabClient
from runner.gitlab.errors import GitLabError
from runner.gitlab.server import Server
from runner.vars.model import SettingsVariable, VariableProblem, from_fields
from runner.vars.scope import ref_is_protected


@dataclass(frozen=True)
class ServerVariables:
    levels: tuple[tuple[SettingsVariable, ...], ...]  # top group first, the project last
    protected_ref: bool


def fetch_server_variables(server: Server, project: str, ref: str) -> ServerVariables:
    with GitLabClient(server) as client:
        facts = client.project(project)
        levels = [
            _checked(client.group_variables(group), f"group {group}")
            for group in _groups(facts, project)
        ]
        levels.append(_checked(client.project_variables(project), f"project {project}"))
        protected = ref_is_protected(ref, client.protected_refs(project))
    return ServerVariables(tuple(levels), protected)


def _groups(facts: dict, project: str) -> list[str]:
    """The groups above the project, the top one first; none in a user's namespace."""
    namespace = facts.get("namespace")
    if isinstance(namespace, dict):
        if namespace.get("kind") == "user":
            return []
        path = str(namespace.get("full_path") or "")
    else:
        path = project.rpartition("/")[0]
    parts = [part for part in path.split("/") if part]
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def _checked(entries: list[dict], level: str) -> tuple[SettingsVariable, ...]:
    found = []
    for entry in entries:
        fields = {key: entry[key] for key in entry if key in _API_FIELDS}
        try:
            found.append(from_fields(fields, level, allow_projects=False))
        except VariableProblem as exc:
            raise ConfigError.one(f"{level} CI/CD variables: {exc}") from None
    return tuple(found)


_API_FIELDS = ("key", "value", "variable_type", "masked", "protected", "raw", "environment_scope")

__all__ = ["GitLabError", "ServerVariables", "fetch_server_variables"]
