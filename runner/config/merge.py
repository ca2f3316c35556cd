"""GitLab's deep merge (ActiveSupport's Hash#deep_merge) on values that keep their locations.

`include` merges files with it, `extends` merges parents into a job with it. The rule is the
same everywhere: when a key is in both mappings and both values are mappings, merge them;
otherwise the right-hand value wins whole (lists and scalars are replaced, never appended;
`null` replaces too). A key keeps the position where it first appeared, as a Ruby Hash does.
"""

from __future__ import annotations

from typing import Any

from runner.config.source import YamlList, YamlMap


def deep_copy(value: Any) -> Any:
    """A copy of `value` whose mappings and lists are new objects with the same locations."""
    if isinstance(value, YamlMap):
        copy = YamlMap(loc=value.loc)
        for key, item in value.items():
            copy[key] = deep_copy(item)
        copy.key_locs.update(value.key_locs)
        return copy
    if isinstance(value, YamlList):
        items = YamlList((deep_copy(item) for item in value), loc=value.loc)
        items.item_locs = list(value.item_locs)
        return items
    if isinstance(value, dict):
        return {key: deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [deep_copy(item) for item in value]
    return value


def deep_merge(base: Any, override: Any) -> Any:
    """`base.deep_merge(override)`: a new mapping where both are mappings; neither argument is
    changed.

    As in Ruby, what is not merged is shared, not copied: the result holds the very values of
    `base` and `override` wherever a key is on one side only (or is not a mapping on both).
    A template extended by 3,000 jobs is then one template, not 3,000 copies of it; every
    later step builds new values instead of changing these (expand.py, references.py).

    The result is located where `override` is (the side written last wins the location too), and
    each key keeps the location of the side its value came from.
    """
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    result = YamlMap(loc=_loc(override) or _loc(base))
    for key, item in base.items():
        result[key] = item
        _set_key_loc(result, key, base)
    for key, item in override.items():
        if key in result and isinstance(result[key], dict) and isinstance(item, dict):
            result[key] = deep_merge(result[key], item)
        else:
            result[key] = item
        _set_key_loc(result, key, override)
    return result


def merge_into(target: YamlMap, override: dict) -> YamlMap:
    """`target.deep_merge!(override)`, in place and without copying: both must be values that
    nothing else holds (freshly loaded files), since they end up sharing parts."""
    if getattr(override, "loc", None) is not None:
        target.loc = override.loc
    for key, item in override.items():
        current = target.get(key)
        if isinstance(current, YamlMap) and isinstance(item, dict):
            merge_into(current, item)
        else:
            target[key] = item
        _set_key_loc(target, key, override)
    return target


def _loc(value: Any) -> Any:
    return getattr(value, "loc", None)


def _set_key_loc(result: YamlMap, key: Any, source: dict) -> None:
    if isinstance(source, YamlMap) and key in source.key_locs:
        result.key_locs[key] = source.key_locs[key]
