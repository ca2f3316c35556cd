"""Doublestar globs as GitLab's artifacts and caches use them (bmatcuk/doublestar semantics).

`*` and `?` never cross a `/`, `**` as a whole path segment spans zero or more directories,
`[abc]` / `[!a]` / `[^a]` are character classes and `{a,b}` alternatives; dot files are not
special. `find_paths` expands one pattern inside a directory the way gitlab-runner's archiver
does: every match, and for a matched directory everything below it, without following links.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

_META = set("*?[{")


def expand_braces(pattern: str) -> list[str]:
    """`a{b,c}d` -> [`abd`, `acd`], nested braces too; an unclosed brace is literal."""
    depth = 0
    start = -1
    for i, ch in enumerate(pattern):
        if ch == "\\":
            continue
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                options = _split_top_level(pattern[start + 1 : i])
                out: list[str] = []
                for option in options:
                    out.extend(expand_braces(pattern[:start] + option + pattern[i + 1 :]))
                return out
    return [pattern]


def _split_top_level(body: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    parts.append(current)
    return parts


@lru_cache(maxsize=512)
def _segment_regex(segment: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(segment):
            i += 1
            out += re.escape(segment[i])
        elif ch == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = segment[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\").replace("]", "\\]")
                out += f"[{'^' if negate else ''}{body}]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out)


def _match_segments(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        rest = pattern[1:]
        return any(_match_segments(rest, path[skip:]) for skip in range(len(path) + 1))
    if not path:
        return False
    return bool(_segment_regex(head).fullmatch(path[0])) and _match_segments(pattern[1:], path[1:])


def match(pattern: str, path: str) -> bool:
    """Whether the relative, slash-separated `path` matches the doublestar `pattern`."""
    path_parts = [p for p in path.split("/") if p not in ("", ".")]
    for alternative in expand_braces(pattern):
        parts = [p for p in alternative.split("/") if p not in ("", ".")]
        if _match_segments(parts, path_parts):
            return True
    return False


def has_magic(pattern: str) -> bool:
    return any(ch in _META for ch in pattern)


def _literal_base(pattern: str) -> str:
    """The leading directories without glob characters (where a walk can start)."""
    base: list[str] = []
    for part in pattern.split("/"):
        if has_magic(part):
            break
        base.append(part)
    else:
        base.pop()  # the last segment is the name itself
    return "/".join(p for p in base if p not in ("", "."))


def _walk_all(root: Path, rel: str) -> list[str]:
    """`rel` and, if it is a real directory, everything below it (links not followed)."""
    found = [rel]
    top = root / rel
    if top.is_dir() and not top.is_symlink():
        for dirpath, dirnames, filenames in os.walk(top):
            base = os.path.relpath(dirpath, root)
            for name in sorted(dirnames) + sorted(filenames):
                found.append(f"{base}/{name}" if base != "." else name)
    return found


def find_paths(root: Path, pattern: str) -> list[str]:
    """Every path under `root` that `pattern` selects, relative and slash-separated, sorted.

    A pattern that names a directory selects the directory and its whole tree, as GitLab's
    `artifacts:paths` and `cache:paths` do.
    """
    pattern = pattern.strip()
    if pattern.startswith("/"):
        # $CI_PROJECT_DIR/... is allowed; anything else outside the project is not
        prefix = str(root).rstrip("/") + "/"
        if not (pattern + "/").startswith(prefix):
            return []
        pattern = pattern[len(prefix) :] or "."
    if os.path.normpath(pattern).split("/")[0] == "..":
        return []
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.rstrip("/") or "."
    found: set[str] = set()
    for alternative in expand_braces(pattern):
        if not has_magic(alternative):
            rel = os.path.normpath(alternative)
            if rel == "." or os.path.lexists(root / rel):
                found.update(_walk_all(root, rel) if rel != "." else _walk_all(root, ".")[1:])
            continue
        base = _literal_base(alternative)
        start = root / base if base else root
        if not start.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, root)
            keep_dirs = []
            for name in sorted(dirnames):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if match(alternative, rel):
                    found.update(_walk_all(root, rel))
                else:
                    keep_dirs.append(name)
            dirnames[:] = keep_dirs  # a matched directory is already taken whole
            for name in filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if match(alternative, rel):
                    found.add(rel)
    return sorted(found)
