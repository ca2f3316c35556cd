"""`extends`: a job (or any top-level mapping) inherits the mappings it names, as GitLab does.

Parents are merged in the order written, each one first extended itself, then the job's own
keys are merged over them (GitLab's deep merge: mappings merge, lists and scalars are replaced).
The `extends` key stays in the job, as it does in GitLab. Errors use GitLab's words:

- `<job>: unknown keys in `extends` (<parent>, ...)` when a parent does not exist,
- `<job>: invalid base hashes in `extends` (<parent>, ...)` when a parent is not a mapping,
- `<job>: nesting too deep in `extends`` when an entry that extends has more than 10
  ancestors: a job can inherit through 11 levels, as GitLab documents,
- `<job>: circular dependency detected in `extends``.

The key named is the entry being extended when the problem is found, which may be a parent.
"""

from __future__ import annotations

from typing import Any

from runner.config.merge import deep_merge
from runner.config.source import YamlMap
from runner.core.errors import Location, ProblemCollector

MAX_EXTENDS_ANCESTORS = 10


class _ExtendsError(Exception):
    def __init__(self, message: str, location: Location | None, key: str):
        super().__init__(message)
        self.message = message
        self.location = location
        self.key = key


def apply_extends(config: YamlMap, problems: ProblemCollector) -> YamlMap:
    """A copy of `config` in which every mapping with `extends` has its parents merged in."""
    extender = _Extender(config)
    reported: set[str] = set()
    for key, value in config.items():
        if not _extensible(value):
            continue
        try:
            extender.extend(key, ())
        except _ExtendsError as error:
            if error.message not in reported:
                reported.add(error.message)
                problems.add(error.message, error.location, error.key, "extends")
    result = YamlMap(loc=config.loc)
    for key in config:
        result[key] = extender.context[key]
    result.key_locs.update(config.key_locs)
    return result


def parent_names(value: Any) -> list[str]:
    """The parents named by an `extends` value (Ruby's `Array(value).map(&:to_s)`)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_ruby_to_s(item) for item in items]


def _ruby_to_s(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _extensible(value: Any) -> bool:
    return isinstance(value, dict) and "extends" in value


class _Extender:
    def __init__(self, config: YamlMap):
        # GitLab replaces each entry with its extended value as it goes; an entry keeps its
        # `extends` key, so it is extended again (and its depth checked again) from every child.
        self.context: dict[Any, Any] = dict(config)

    def extend(self, key: Any, ancestors: tuple[Any, ...]) -> Any:
        value = self.context[key]
        if not _extensible(value):
            return value
        where = value.loc_of("extends") if isinstance(value, YamlMap) else None
        name = _ruby_to_s(key)
        parents = parent_names(value["extends"])
        unknown = [parent for parent in parents if parent not in self.context]
        if unknown:
            message = f"{name}: unknown keys in `extends` ({', '.join(unknown)})"
            raise _ExtendsError(message, where, name)
        invalid = [parent for parent in parents if not isinstance(self.context[parent], dict)]
        if invalid:
            message = f"{name}: invalid base hashes in `extends` ({', '.join(invalid)})"
            raise _ExtendsError(message, where, name)
        if len(ancestors) > MAX_EXTENDS_ANCESTORS:
            raise _ExtendsError(f"{name}: nesting too deep in `extends`", where, name)
        if key in ancestors:
            raise _ExtendsError(f"{name}: circular dependency detected in `extends`", where, name)
        merged: Any = YamlMap()
        for parent in parents:
            merged = deep_merge(merged, self.extend(parent, (*ancestors, key)))
        result = deep_merge(merged, value)
        self.context[key] = result
        return result
