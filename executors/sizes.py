"""Sizes as Docker writes them: `512m`, `10G`, `1.5GiB`, `1048576` (powers of 1024).

go-units' RAMInBytes, which Docker uses for `--memory` and friends: a number, then k, m, g, t
or p, an optional `i` and an optional `b`, in any case. The one parser for the store's cap
and the containers' memory limits.
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s?([kmgtp]?)i?b?\s*$", re.IGNORECASE)
UNITS = " kmgtp"


def parse_size(text: str) -> int:
    """Bytes; `ValueError` naming the text when it is not a size."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (use e.g. 512m or 10G)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** UNITS.index(unit or " "))
