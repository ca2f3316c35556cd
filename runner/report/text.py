"""Job output as people read it: GitLab trace markup removed, colours optional.

The build emits a GitLab-format trace: `section_start:<time>:<name>\\r\\e[0K` markers around
each build stage and ANSI colours. Plain output and log files show lines without the
markers (a line that held only markers disappears); colours stay only on a terminal.
"""

from __future__ import annotations

import re

_SECTION = re.compile(r"section_(?:start|end):\d+:[^\r\n\x1b]*?\r?\x1b\[0K")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def clean_line(line: str, colors: bool) -> str | None:
    """`line` (no newline) without trace markers; None when nothing but markers was on it."""
    stripped = _SECTION.sub("", line)
    if stripped != line and not _ANSI.sub("", stripped).strip():
        return None
    stripped = stripped.rstrip("\r")
    return stripped if colors else strip_ansi(stripped)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class LineBuffer:
    """Splits a stream of chunks into complete lines, per job."""

    def __init__(self) -> None:
        self._partial: dict[str, str] = {}

    def feed(self, job: str, text: str) -> list[str]:
        *lines, rest = (self._partial.pop(job, "") + text).split("\n")
        if rest:
            self._partial[job] = rest
        return lines

    def flush(self, job: str) -> str | None:
        """The unfinished last line of `job`, if any."""
        return self._partial.pop(job, None) or None
