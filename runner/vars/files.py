"""Variables files: `.pyci/variables.yml` (the project's) and `~/.config/pyci/variables.yml`
(the user's, whose entries may name the projects they apply to).

Both hold what GitLab's CI/CD settings hold, with the fields of its variables API:

    variables:
      - key: KUBECONFIG
        value: "..."
        variable_type: file        # env_var (default) or file
        masked: true
        protected: false
        raw: false
        environment_scope: "*"
        projects: ["group/*"]      # the user file only: project path globs (default: all)

A list at the top (what `GET /projects/:id/variables` answers, saved as is) is read too.
A mistake is one ConfigError line naming the file and the line of the entry.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from runner.core.errors import ConfigError, Location
from runner.vars.model import SettingsVariable, VariableProblem, from_fields

PROJECT_FILE = Path(".pyci") / "variables.yml"
PROJECT_LEVEL = "project file"
USER_LEVEL = "user file"


def user_file() -> Path:
    """`$XDG_CONFIG_HOME/pyci/variables.yml`, by default `~/.config/pyci/variables.yml`."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "pyci" / "variables.yml"


def read_variables_file(path: Path, level: str, *, allow_projects: bool) -> list[SettingsVariable]:
    """The file's entries in file order; [] when it does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.one(f"cannot read the variables file: {exc}", Location(str(path)))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        raise ConfigError.one(f"invalid YAML: {exc.problem}", where) from exc
    except yaml.YAMLError as exc:
        raise ConfigError.one(f"invalid YAML: {exc}", Location(str(path))) from exc
    if data is None:
        return []
    entries, node = _entries(data, root)
    if entries is None:
        where = _location(path, root)
        raise ConfigError.one("expected `variables:` with a list of variables", where)
    found = []
    for index, entry in enumerate(entries):
        item = node.value[index] if isinstance(node, SequenceNode) else None
        try:
            found.append(from_fields(entry, level, allow_projects=allow_projects))
        except VariableProblem as exc:
            where = _location(path, _field_node(item, exc.field) or item)
            raise ConfigError.one(f"variables: {exc}", where) from None
    return found


def _entries(data: object, root: Node | None) -> tuple[list | None, Node | None]:
    if isinstance(data, list):
        return data, root
    if isinstance(data, dict) and set(data) == {"variables"} and isinstance(root, MappingNode):
        listed = data["variables"]
        node = root.value[0][1]
        return (listed, node) if isinstance(listed, list) else (None, None)
    return None, None


def _field_node(item: Node | None, field: str | None) -> Node | None:
    if not isinstance(item, MappingNode) or field is None:
        return None
    for key, value in item.value:
        if key.value == field:
            return value
    return None


def _location(path: Path, node: Node | None) -> Location:
    if node is None:
        return Location(str(path))
    return Location(str(path), node.start_mark.line + 1, node.start_mark.column + 1)
