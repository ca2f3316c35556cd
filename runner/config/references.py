"""Resolving `!reference [job, key, ...]` tags against the whole configuration.

GitLab resolves references after every include is merged and after `extends` is applied, so a
reference can point into another file and at keys a job only has through `extends`. The target
is looked up by walking mappings only (a list or a scalar on the way means "not found"); a target
that holds references is resolved too, and a chain that comes back to itself is an error. The
inserted value keeps the locations of the place it was copied from.

A reference inside a list that points at a list gives a nested list, as in GitLab: scripts and
rules are flattened afterwards (see expand.py), which is what makes nesting work there.

GitLab inserts the one resolved object wherever it is referenced; pyci inserts copies, so that
each keeps the positions of its own source. Copies are what a hostile file multiplies (a chain
of references that doubles at each step is exponential), so they are bounded (limits.py): the
bytes of all copies together, as GitLab's DeepSize would count them, how many references may
sit inside one another, and how deeply the result may nest. Past a bound, resolution stops with
one problem.
"""

from __future__ import annotations

from typing import Any

from runner.config.limits import MAX_REFERENCE_COPY_BYTES, MAX_REFERENCE_DEPTH, MAX_YAML_DEPTH
from runner.config.merge import deep_copy
from runner.config.rubysize import value_size
from runner.config.source import YamlList, YamlMap
from runner.config.yamlload import Reference
from runner.core.errors import Location, ProblemCollector

_MISSING = object()


class _Unresolvable(Exception):
    def __init__(self, message: str, location: Location):
        super().__init__(message)
        self.message = message
        self.location = location


class _OverLimit(_Unresolvable):
    """A bound of this module is passed: no other reference is resolved after it."""


def resolve_references(
    config: YamlMap, problems: ProblemCollector, *, keep_missing: bool = False
) -> YamlMap:
    """A copy of `config` with every Reference replaced by the value it points at.

    With `keep_missing`, a reference whose target does not exist stays a Reference (used when a
    single file is checked alone and the target may live in another file).
    """
    return _Resolver(config, problems, keep_missing).resolve_all()


def reference_message(ref: Reference, what: str) -> str:
    return f"{ref} {what}"


class _Resolver:
    def __init__(self, config: YamlMap, problems: ProblemCollector, keep_missing: bool):
        self.config = config
        self.problems = problems
        self.keep_missing = keep_missing
        self.resolving: list[Reference] = []  # references being resolved, innermost last
        self.resolved: dict[int, tuple[Any, int]] = {}  # value and its size, by id of reference
        self.copied = 0  # bytes of the copies inserted so far
        # subtrees found without references (by id; the value is kept so the id stays its)
        self.unchanged: dict[int, Any] = {}
        self.stopped = False  # a bound was passed and reported

    def resolve_all(self) -> YamlMap:
        """A new root whose every top-level mapping (job, template, global) is a new one too:
        what comes next sets keys of a job's own mapping (expand.py), and two jobs written as
        aliases of one anchor must not share it. Below that, unchanged values are shared."""
        resolved = self._copy_resolving(self.config, (), nested=False)
        root = YamlMap(loc=self.config.loc)
        root.key_locs.update(self.config.key_locs)
        for key, value in resolved.items():
            if isinstance(value, YamlMap):
                own = YamlMap(value, loc=value.loc)
                own.key_locs.update(value.key_locs)
                value = own
            root[key] = value
        return root

    def _copy_resolving(self, value: Any, path: tuple[Any, ...], *, nested: bool) -> Any:
        """`value` with its references replaced: a new value where something was replaced,
        the same value where nothing was (copy on write). Outside references, a subtree that
        several jobs share (extends shares its templates) is looked at once."""
        if not nested and isinstance(value, (dict, list)):
            seen = self.unchanged.get(id(value))
            if seen is value:
                return value
        result = self._copy_resolving_once(value, path, nested=nested)
        if not nested and result is value and isinstance(value, (dict, list)):
            self.unchanged[id(value)] = value
        return result

    def _copy_resolving_once(self, value: Any, path: tuple[Any, ...], *, nested: bool) -> Any:
        step = self._resolve if nested else self._top_level
        if isinstance(value, Reference):
            return step(value, path)
        if nested and len(path) > MAX_YAML_DEPTH and isinstance(value, (dict, list)):
            raise _OverLimit(
                f"nests more than {MAX_YAML_DEPTH} levels deep once references are inserted",
                self._innermost_location(),
            )
        # plain dicts and lists (built by code, not YAML) become located ones without locations
        if isinstance(value, dict):
            items = {key: self._copy_resolving(v, (*path, key), nested=nested)
                     for key, v in value.items()}  # fmt: skip
            if isinstance(value, YamlMap) and all(items[k] is value[k] for k in value):
                return value
            copy = YamlMap(items, loc=getattr(value, "loc", None))
            copy.key_locs.update(getattr(value, "key_locs", {}))
            return copy
        if isinstance(value, list):
            entries = [
                self._copy_resolving(item, (*path, index), nested=nested)
                for index, item in enumerate(value)
            ]
            same = all(a is b for a, b in zip(entries, value, strict=True))
            if isinstance(value, YamlList) and same:
                return value
            copied = YamlList(entries, loc=getattr(value, "loc", None))
            copied.item_locs = list(getattr(value, "item_locs", []))
            return copied
        return value

    def _top_level(self, ref: Reference, path: tuple[Any, ...]) -> Any:
        """Resolve one reference written in the configuration; report a failure once, here."""
        if self.stopped:
            return None
        try:
            return self._resolve(ref, path)
        except _Unresolvable as failure:
            self.resolving.clear()
            self.stopped = isinstance(failure, _OverLimit)
            job = str(path[0]) if path else None
            key = str(path[1]) if len(path) > 1 else None
            self.problems.add(failure.message, failure.location, job, key)
            return None

    def _resolve(self, ref: Reference, path: tuple[Any, ...]) -> Any:
        if id(ref) in self.resolved:
            return self._copy(ref, *self.resolved[id(ref)])
        if any(open_ref is ref for open_ref in self.resolving):
            raise _Unresolvable(reference_message(ref, "is part of a circular chain"), ref.loc)
        target = _dig(self.config, ref.path)
        if target is _MISSING or target is None:
            if self.keep_missing:
                return ref
            raise _Unresolvable(reference_message(ref, "could not be found"), ref.loc)
        if len(self.resolving) >= MAX_REFERENCE_DEPTH:
            raise _OverLimit(
                reference_message(
                    ref, f"is more than {MAX_REFERENCE_DEPTH} references inside one another"
                ),
                ref.loc,
            )
        self.resolving.append(ref)
        value = self._copy_resolving(target, path, nested=True)
        self.resolving.pop()
        size = value_size(value)
        self.resolved[id(ref)] = (value, size)
        return self._copy(ref, value, size)

    def _copy(self, ref: Reference, value: Any, size: int) -> Any:
        """A copy of `value`, counted against the bound on copies (checked before copying)."""
        self.copied += size
        if self.copied > MAX_REFERENCE_COPY_BYTES:
            raise _OverLimit(
                reference_message(
                    ref,
                    f"makes the configuration too big: its copies pass {MAX_REFERENCE_COPY_BYTES:,}"
                    " bytes",
                ),
                ref.loc,
            )
        return deep_copy(value)

    def _innermost_location(self) -> Location:
        return self.resolving[-1].loc


def _dig(config: Any, path: tuple[str, ...]) -> Any:
    """Ruby's Hash#dig: through mappings only; anything else on the way means not found."""
    node = config
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node
