"""File names made from names the user chose (job names, service names).

A job name may be 255 characters of anything: spaces, brackets, slashes, UTF-8. A file name
may hold 255 bytes (NAME_MAX) and no `/`. So a name keeps its safe characters, the others
become `-`, and a name that had to change (or is long) is cut and ends with a short hash of
the original: two names never share a file, and every name pyci derives from the stem (the
stem plus `.log`, `.json`, `.reports`, or `tempfile`'s random tail) stays within NAME_MAX.
"""

from __future__ import annotations

import hashlib
import re

NAME_MAX = 255  # bytes in one file name on Linux file systems
STEM_MAX = 100  # what a stem may take; the rest of NAME_MAX is left for suffixes
_KEPT = 80  # characters of the name kept before the hash when it had to change

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(name: str) -> str:
    """A safe file name stem for `name` (ASCII only, at most STEM_MAX bytes, no leading dot):
    `build` stays `build`; `test: [3.11, a]` becomes `test-3.11-a-<8 hex digits>`."""
    safe = _UNSAFE.sub("-", name).strip("-.") or "job"
    if safe == name and len(safe) <= STEM_MAX:
        return safe
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[:_KEPT]}-{digest}"
