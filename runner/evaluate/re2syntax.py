"""RE2 patterns, run by RE2 itself, as GitLab runs them.

GitLab compiles the `/pattern/flags` of `rules:if` (and of `only`/`except` refs, and of
`spec:inputs` `regex`) with `Gitlab::UntrustedRegexp`: Google's RE2, which matches in time
linear in the text and refuses what needs backtracking (backreferences, look-around). Python's
`re` backtracks: `$V =~ /(a+)+$/` on forty `a`s and a `!` would never end. So patterns go to
RE2 through the `google-re2` binding, with GitLab's options and flags:

- the flags of `/.../flags` are put in front as `(?flags)`, as GitLab's RubySyntax does; `^`
  and `$` are then text anchors unless `m`, `.` stops at `\\n` unless `s`, `U` swaps greedy and
  lazy, and `\\d \\w \\s \\b` are ASCII, all RE2's own meaning;
- what RE2 refuses is a `RegexSyntaxError` with RE2's reason (GitLab reports RE2's error too).

Compiled patterns are kept by source, flags: a rule is evaluated once per job.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["RegexSyntaxError", "compile_re2"]

_FLAGS = "imsU"


class RegexSyntaxError(ValueError):
    """The pattern is not valid RE2."""


def compile_re2(pattern: str, flags: str = "") -> Any:
    """`pattern` compiled by RE2 with RE2 flags (`i`, `m`, `s`, `U`); `.search(text)` and
    `.match(text)` return a match object or None, like Python's patterns."""
    unknown = set(flags) - set(_FLAGS)
    if unknown:
        raise RegexSyntaxError(f"unknown flag {sorted(unknown)[0]!r}")
    return _compiled(f"(?{flags}){pattern}" if flags else pattern)


@lru_cache(maxsize=512)
def _compiled(source: str) -> Any:
    import re2  # google-re2; imported on first use (4 ms), most pipelines have no pattern

    options = re2.Options()
    options.log_errors = False  # RE2 would print the error on stderr; it is reported instead
    try:
        return re2.compile(source, options)
    except re2.error as exc:
        raise RegexSyntaxError(f"invalid regular expression: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):  # the binding passes RE2's message on undecoded
        return reason.decode("utf-8", "replace")
    return str(reason)
