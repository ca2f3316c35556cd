"""YAML values that remember where they came from.

The loader builds plain `dict`/`list`/scalars so every later step can treat the configuration as
ordinary data, but mappings and sequences are the subclasses below, which carry the location of
the node and of each key/item. Errors found much later (a pydantic `loc` path, an unknown `needs`)
can then name `file:line:column` by walking the same path with `locate()`.

Merging (`extends`, `default:`, `!reference`) copies these objects; whoever builds a merged value
keeps the location of the side that won, so errors point at the line the user wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.core.errors import Location


class YamlMap(dict):
    """A mapping from YAML; `loc` is where it starts, `key_locs[k]` where key `k` is written."""

    __slots__ = ("key_locs", "loc")

    def __init__(self, *args: Any, loc: Location | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.loc = loc
        self.key_locs: dict[Any, Location] = {}

    def loc_of(self, key: Any) -> Location | None:
        return self.key_locs.get(key, self.loc)


class YamlList(list):
    """A sequence from YAML; `item_locs[i]` is where item `i` is written."""

    __slots__ = ("item_locs", "loc")

    def __init__(self, items: Iterable[Any] = (), loc: Location | None = None):
        super().__init__(items)
        self.loc = loc
        self.item_locs: list[Location | None] = []

    def loc_of(self, index: int) -> Location | None:
        if 0 <= index < len(self.item_locs) and self.item_locs[index] is not None:
            return self.item_locs[index]
        return self.loc


def loc_of(value: Any) -> Location | None:
    """The location of a mapping or list, None for scalars (they carry none)."""
    return getattr(value, "loc", None)


def locate(root: Any, path: Iterable[Any]) -> Location | None:
    """The most precise known location of `root[path[0]][path[1]]...`.

    Stops at the deepest node that exists, so a path into a missing key still lands on the
    mapping that should have held it.
    """
    best = loc_of(root)
    node = root
    for part in path:
        if isinstance(node, YamlMap) and part in node:
            best = node.loc_of(part) or best
            node = node[part]
        elif isinstance(node, YamlList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.loc_of(part) or best
            node = node[part]
        else:
            break
    return best
