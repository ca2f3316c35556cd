"""GitLab's glob semantics for `changes`, `exists` (and `cache:key:files`).

GitLab matches these with Ruby's `File.fnmatch?(glob, path, FNM_PATHNAME | FNM_DOTMATCH |
FNM_EXTGLOB)`, which is not Python's `fnmatch` nor `pathlib.Path.match`:

- `*` and `?` never cross a `/`; `[...]` (with `!` or `^` to negate) never matches `/`.
- `**/` at the start of a path segment matches zero or more whole directories, so `**/*.js`
  matches `a.js` and `x/y/a.js`; a `**` that is not followed by `/` is just `*`, so `docs/**`
  matches `docs/a` but *not* `docs/a/b` (write `docs/**/*`).
- dot files are matched by wildcards like any other name (FNM_DOTMATCH).
- `{a,b}` alternatives, nested too (FNM_EXTGLOB); `\\` escapes the next character.
- matching is case-sensitive and the whole path must match.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runner.evaluate.re2syntax import compile_re2

__all__ = ["brace_expand", "find_matching", "glob_match", "glob_regex", "list_project_files"]


def brace_expand(pattern: str) -> list[str]:
    """Ruby's brace expansion: `a{b,c{d,e}}` -> `ab`, `acd`, `ace`; escapes are respected."""
    depth = 0
    start = -1
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                head, body, tail = pattern[:start], pattern[start + 1 : i], pattern[i + 1 :]
                results: list[str] = []
                for option in _split_top_level(body):
                    results.extend(brace_expand(head + option + tail))
                return results
        i += 1
    return [pattern]


def _split_top_level(body: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            current.append(body[i : i + 2])
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _translate(pattern: str) -> str:
    """One brace-free glob as a regex body."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        at_segment_start = i == 0 or pattern[i - 1] == "/"
        if c == "*":
            if at_segment_start and pattern.startswith("**/", i):
                out.append("(?:[^/]*/)*")  # zero or more whole directories
                i += 3
                continue
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            end, body = _bracket(pattern, i)
            if end < 0:
                out.append(_NEVER)  # Ruby: an unclosed `[` never matches
            else:
                out.append(body)
                i = end
                continue
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _bracket(pattern: str, start: int) -> tuple[int, str]:
    """A `[...]` class at `start`: (index after it, regex), or (-1, '') when unclosed."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    ranges: list[tuple[str, str]] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            return i + 1, _class(ranges, negate)
        first = False
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            high = pattern[i + 2]
            if high == "\\" and i + 3 < len(pattern):
                high = pattern[i + 3]
                i += 1
            if ord(high) >= ord(c):
                ranges.append((c, high))
            i += 3
            continue
        ranges.append((c, c))
        i += 1
    return -1, ""


def _class(ranges: list[tuple[str, str]], negate: bool) -> str:
    """A class that never matches `/` (RE2 has no look-ahead to say so: `/` is cut out)."""
    if negate:
        return "[^/" + "".join(_range(low, high) for low, high in ranges) + "]"
    kept: list[tuple[str, str]] = []
    for low, high in ranges:
        if low <= "/" <= high:  # keep what is on either side of `/`
            kept += [(low, "."), ("0", high)]
        else:
            kept.append((low, high))
    kept = [(low, high) for low, high in kept if low <= high]
    if not kept:
        return _NEVER
    return "[" + "".join(_range(low, high) for low, high in kept) + "]"


def _range(low: str, high: str) -> str:
    return re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}"


# a class that matches nothing (RE2 has no `(?!)`)
_NEVER = r"[^\x00-\x{10FFFF}]"


@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> Any:
    """The compiled matcher for a GitLab glob (all brace alternatives), run by RE2: with
    Python's re, `*a*a*a...` and `**/**/**/...` backtrack (14 `*a` took 11 s on a 30-character
    name); RE2 is linear."""
    alternatives = "|".join(f"(?:{_translate(p)})" for p in brace_expand(pattern))
    return compile_re2(f"(?s:{alternatives})\\z")


def glob_match(pattern: str, path: str) -> bool:
    """Whether `path` (relative, `/`-separated) matches `pattern` as GitLab matches it."""
    return glob_regex(pattern).match(path) is not None


def list_project_files(root: Path) -> list[str]:
    """The files of the project as GitLab's worktree would hold them, sorted.

    In a git work tree: tracked files plus untracked ones that are not ignored (what the next
    commit would contain, so `exists:` sees a file the user just created). Elsewhere: every file
    under `root` except `.git` and `.pyci`.
    """
    from runner import gitrepo

    listed = gitrepo.output(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is None:
        return sorted(_walk(root))
    names = {name for name in listed.decode("utf-8", "surrogateescape").split("\0") if name}
    # deleted-but-tracked files are listed by --cached; GitLab would not see them after commit
    return sorted(name for name in names if os.path.lexists(root / name))


def _walk(root: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".pyci")]
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")


def find_matching(root: Path, patterns: Sequence[str]) -> list[str]:
    """The project files (see `list_project_files`) that match any of `patterns`."""
    if not patterns:
        return []
    regexes = [glob_regex(p) for p in patterns]
    return [path for path in list_project_files(root) if any(rx.match(path) for rx in regexes)]
