"""How many bytes Ruby's `ObjectSpace.memsize_of` gives a parsed YAML value, estimated.

GitLab bounds a parsed file by the memory its objects take (Gitlab::Utils::DeepSize): every
string, array and hash is measured with `ObjectSpace.memsize_of`, an alias each time it is
used, and the sum may not pass `max_yaml_size_bytes`. pyci counts the same way with the sizes
below (64-bit CRuby): each is the object's slot plus what it allocates beyond it, rounded down
where Ruby versions differ, so that pyci never refuses what GitLab accepts for size alone.
"""

from __future__ import annotations

from typing import Any

SLOT = 40  # an RVALUE: every heap object takes one
_EMBEDDED_STRING = 23  # bytes a string keeps inside its slot
_EMBEDDED_ARRAY = 3  # items an array keeps inside its slot
_SMALL_HASH = 8  # a hash of up to 8 pairs is one fixed table (ar_table: 8 pairs + hints)
_SMALL_HASH_TABLE = 8 * 16 + 8
_FIXNUM_BITS = 62  # integers up to this many bits are immediate values, with no object


def string_size(text: str) -> int:
    length = len(text)  # characters: a lower bound of Ruby's bytes
    return SLOT if length <= _EMBEDDED_STRING else SLOT + length + 1


def array_size(length: int) -> int:
    return SLOT if length <= _EMBEDDED_ARRAY else SLOT + 8 * length


def hash_size(length: int) -> int:
    if length == 0:
        return SLOT
    if length <= _SMALL_HASH:
        return SLOT + _SMALL_HASH_TABLE
    return SLOT + 24 * length  # st_table entries (hash, key, value); bins left out


def scalar_size(value: Any) -> int:
    """A scalar as psych builds it: a String, an Integer, a Float, true, false or nil."""
    if isinstance(value, str):
        return string_size(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return 0  # immediates (a Float is a "flonum" unless it is very large or small)
    if isinstance(value, int):
        bits = value.bit_length()
        return 0 if bits <= _FIXNUM_BITS else SLOT + 8 * ((bits + 63) // 64)
    return SLOT  # any other object: a `!reference` tag


def value_size(value: Any) -> int:
    """The deep size of a built value (mappings, lists and scalars), walked without recursion."""
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            total += hash_size(len(item))
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            total += array_size(len(item))
            pending.extend(item)
        else:
            total += scalar_size(item)
    return total
