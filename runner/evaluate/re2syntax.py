"""RE2 patterns, as GitLab runs them, translated into Python `re` patterns.

GitLab compiles the `/.../flags` of a `rules:if` with RE2, not with Ruby's engine. Python's `re`
differs from RE2 in ways that change results, so a pattern is not handed over as is but walked
once and rewritten with every difference made explicit:

- `^`/`$` mean start/end of *text* unless `m` is on (Python's `$` also matches before a final
  newline); `\\z` is RE2's end of text, `\\Z` does not exist in RE2.
- `\\d \\w \\s \\b` are ASCII-only in RE2 (Unicode-aware in Python).
- `.` never matches `\\n` unless `s` is on; `U` swaps greedy and lazy quantifiers (Python has
  no such flag); `(?i)` may appear mid-pattern and lasts to the end of its group (Python only
  accepts global flags at the very start).
- `(?<name>...)` is a named group, `\\x{263a}` a code point, `\\Q...\\E` quoted text,
  `[[:alpha:]]` a POSIX class; `{,3}` is a literal, not a repetition.
- What RE2 rejects is rejected here too (backreferences, look-around, atomic groups, possessive
  quantifiers, repetition counts above 1000), so GitLab and pyci agree on which patterns are
  invalid. Unicode classes (`\\pL`) are the one thing RE2 has that this does not: they are
  reported as unsupported rather than silently mistranslated.

Flags are tracked per group and applied atom by atom (`(?i:a)`), so the output needs no global
flags at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

_MAX_REPEAT = 1000

_WORD = "0-9A-Za-z_"
_CLASS_ESCAPES = {  # RE2's Perl classes, ASCII only; (positive set, negated?)
    "d": ("0-9", False),
    "D": ("0-9", True),
    "s": ("\\t\\n\\f\\r ", False),
    "S": ("\\t\\n\\f\\r ", True),
    "w": (_WORD, False),
    "W": (_WORD, True),
}
_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": _WORD,
    "xdigit": "0-9A-Fa-f",
}
_SIMPLE_ESCAPES = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}
_WORD_BOUNDARY = f"(?:(?<![{_WORD}])(?=[{_WORD}])|(?<=[{_WORD}])(?![{_WORD}]))"
_NOT_WORD_BOUNDARY = f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


class RegexSyntaxError(ValueError):
    """The pattern is not valid RE2 (or uses what pyci cannot translate)."""


@dataclass(frozen=True)
class _Flags:
    i: bool = False
    m: bool = False
    s: bool = False
    U: bool = False


def compile_re2(pattern: str, flags: str = "") -> re.Pattern[str]:
    """Compile an RE2 pattern with RE2 flags (`i`, `m`, `s`, `U`) into a Python pattern."""
    translated = translate(pattern, flags)
    try:
        return re.compile(translated)
    except re.error as exc:  # a gap in the translation is still reported as a bad pattern
        raise RegexSyntaxError(f"invalid regular expression: {exc}") from exc


def translate(pattern: str, flags: str = "") -> str:
    start = _Flags()
    for letter in flags:
        if letter not in "imsU":
            raise RegexSyntaxError(f"unknown flag {letter!r}")
        start = replace(start, **{letter: True})
    return _Translator(pattern, start).run()


class _Translator:
    def __init__(self, pattern: str, flags: _Flags):
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        # one entry per open group: the flags in force inside it
        self.flag_stack: list[_Flags] = [flags]
        # whether the last thing emitted can take a quantifier, and whether it already has one
        self.can_repeat = False
        self.repeated = False
        self.class_parts: list[str] = []  # the class being translated by char_class

    @property
    def flags(self) -> _Flags:
        return self.flag_stack[-1]

    def fail(self, message: str) -> RegexSyntaxError:
        return RegexSyntaxError(f"{message} at offset {self.pos} in /{self.src}/")

    def run(self) -> str:
        while self.pos < len(self.src):
            self.step()
        if len(self.flag_stack) > 1:
            raise self.fail("missing closing )")
        return "".join(self.out)

    def atom(self, text: str, fold: bool = True) -> None:
        if fold and self.flags.i:
            text = f"(?i:{text})"
        self.out.append(text)
        self.can_repeat, self.repeated = True, False

    def assertion(self, text: str) -> None:
        self.out.append(text)
        self.can_repeat, self.repeated = False, False

    def step(self) -> None:
        c = self.src[self.pos]
        if c in "*+?{":
            if self.quantifier():
                return
            c = "{"  # a `{` that does not start a repetition is a literal
        self.pos += 1
        if c == "\\":
            self.escape()
        elif c == "[":
            self.atom(self.char_class())
        elif c == "(":
            self.open_group()
        elif c == ")":
            if len(self.flag_stack) == 1:
                raise self.fail("unexpected )")
            self.flag_stack.pop()
            self.out.append(")")
            self.can_repeat, self.repeated = True, False
        elif c == "|":
            self.assertion("|")
        elif c == ".":
            self.atom("[\\s\\S]" if self.flags.s else "[^\\n]", fold=False)
        elif c == "^":
            self.assertion("(?m:^)" if self.flags.m else "\\A")
        elif c == "$":
            self.assertion("(?m:$)" if self.flags.m else "\\Z")
        else:
            self.atom(re.escape(c))

    def quantifier(self) -> bool:
        c = self.src[self.pos]
        if c == "{":
            found = _REPEAT.match(self.src, self.pos)
            if not found:
                return False
            low = int(found.group(1))
            high = found.group(3)
            if low > _MAX_REPEAT or (high and int(high) > _MAX_REPEAT):
                raise self.fail("bad repetition operator")
            if high and int(high) < low:
                raise self.fail("bad repetition operator")
            text = found.group(0)
            end = found.end()
        else:
            text, end = c, self.pos + 1
        if not self.can_repeat or self.repeated:
            raise self.fail(f"missing argument to repetition operator {text}")
        lazy = end < len(self.src) and self.src[end] == "?"
        if lazy:
            end += 1
        if end < len(self.src) and self.src[end] == "+":
            raise self.fail("bad repetition operator (possessive)")
        if lazy != self.flags.U:  # U swaps the meaning of the trailing `?`
            text += "?"
        self.out.append(text)
        self.pos = end
        self.repeated = True
        return True

    def open_group(self) -> None:
        src, pos = self.src, self.pos
        if not src.startswith("?", pos):
            self.flag_stack.append(self.flags)
            self.out.append("(")
            self.can_repeat = False
            return
        for prefix in ("?P<", "?<"):
            if src.startswith(prefix, pos) and not src.startswith(("?<=", "?<!"), pos):
                close = src.find(">", pos)
                name = src[pos + len(prefix) : close] if close > 0 else ""
                if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                    raise self.fail("invalid named capture group")
                self.pos = close + 1
                self.flag_stack.append(self.flags)
                self.out.append(f"(?P<{name}>")
                self.can_repeat = False
                return
        found = re.compile(r"\?([imsU]*)(?:-([imsU]*))?([:)])").match(src, pos)
        if not found or (found.group(2) is not None and not found.group(2)):
            raise self.fail("invalid or unsupported Perl syntax")
        new = self.flags
        for letter in found.group(1):
            new = replace(new, **{letter: True})
        for letter in found.group(2) or "":
            new = replace(new, **{letter: False})
        self.pos = found.end()
        if found.group(3) == ")":  # `(?i)`: changes the rest of the enclosing group
            if not found.group(1) and not found.group(2):
                raise self.fail("invalid or unsupported Perl syntax")
            self.flag_stack[-1] = new
            self.can_repeat = False
        else:
            self.flag_stack.append(new)
            self.out.append("(?:")
            self.can_repeat = False

    def escape(self) -> None:
        if self.pos >= len(self.src):
            raise self.fail("trailing \\")
        c = self.src[self.pos]
        self.pos += 1
        if c in _CLASS_ESCAPES:
            chars, negated = _CLASS_ESCAPES[c]
            self.atom(f"[{'^' if negated else ''}{chars}]", fold=False)
        elif c == "b":
            self.assertion(_WORD_BOUNDARY)
        elif c == "B":
            self.assertion(_NOT_WORD_BOUNDARY)
        elif c == "A":
            self.assertion("\\A")
        elif c == "z":
            self.assertion("\\Z")
        elif c == "Q":
            end = self.src.find("\\E", self.pos)
            end = len(self.src) if end < 0 else end
            for ch in self.src[self.pos : end]:
                self.atom(re.escape(ch))
            self.pos = min(end + 2, len(self.src))
        else:
            self.atom(re.escape(self.escaped_char(c)))

    def escaped_char(self, c: str) -> str:
        """The character an escape outside the Perl classes stands for (`\\n`, `\\x41`, `\\.`)."""
        src = self.src
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        if c == "x":
            if src.startswith("{", self.pos):
                end = src.find("}", self.pos)
                digits = src[self.pos + 1 : end] if end > 0 else ""
                self.pos = end + 1
            else:
                digits = src[self.pos : self.pos + 2]
                self.pos += 2
            if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", digits) or int(digits, 16) > 0x10FFFF:
                raise self.fail("invalid escape sequence \\x")
            return chr(int(digits, 16))
        if c in "01234567":
            # RE2: \0 starts an octal escape; \1-\7 only when another octal digit follows
            # (a lone \1 would be a backreference, which RE2 does not support).
            digits = re.compile(r"[0-7]{0,2}").match(src, self.pos).group(0)
            if c != "0" and not digits:
                raise self.fail(f"invalid escape sequence \\{c}")
            self.pos += len(digits)
            return chr(int(c + digits, 8))
        if c in "pP":
            raise self.fail("Unicode classes (\\p) are not supported by pyci")
        if c.isascii() and (c.isalnum() or c == "_"):
            raise self.fail(f"invalid escape sequence \\{c}")
        return c

    def char_class(self) -> str:
        """Translate `[...]` (the `[` already consumed) into a Python class."""
        src = self.src
        negated = src.startswith("^", self.pos)
        if negated:
            self.pos += 1
        parts: list[str] = []
        self.class_parts = parts
        first = True
        while True:
            if self.pos >= len(src):
                raise self.fail("missing closing ]")
            c = src[self.pos]
            if c == "]" and not first:
                self.pos += 1
                break
            first = False
            if src.startswith("[:", self.pos):
                end = src.find(":]", self.pos + 2)
                name = src[self.pos + 2 : end] if end > 0 else ""
                invert = name.startswith("^")
                if name.lstrip("^") in _POSIX:
                    chars = _POSIX[name.lstrip("^")]
                    self.pos = end + 2
                    if invert:
                        raise self.fail("negated POSIX classes are not supported by pyci")
                    parts.append(chars)
                    continue
            low = self.class_char()
            if low is None:
                continue  # a Perl class escape, already appended by class_char
            if src.startswith("-", self.pos) and not src.startswith("-]", self.pos):
                self.pos += 1
                high = self.class_char()
                if high is None or ord(high) < ord(low):
                    raise self.fail("invalid character class range")
                parts.append(f"{_class_escape(low)}-{_class_escape(high)}")
            else:
                parts.append(_class_escape(low))
        return f"[{'^' if negated else ''}{''.join(parts)}]"

    def class_char(self) -> str | None:
        """One character of a class; Perl class escapes are appended directly (None)."""
        c = self.src[self.pos]
        self.pos += 1
        if c != "\\":
            return c
        if self.pos >= len(self.src):
            raise self.fail("trailing \\")
        e = self.src[self.pos]
        self.pos += 1
        if e in _CLASS_ESCAPES:
            chars, negated = _CLASS_ESCAPES[e]
            # Python has no ASCII-only negated class inside a class; `\\D` is close enough
            self.class_parts.append(f"\\{e}" if negated else chars)
            return None
        return self.escaped_char(e)


def _class_escape(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c
