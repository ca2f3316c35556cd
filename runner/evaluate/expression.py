"""GitLab's `rules:if` / `only:variables` expression language.

The behaviour follows GitLab's lexer, shunting-yard parser and lexemes
(lib/gitlab/ci/pipeline/expression), including their corners, because a rule that matches in
GitLab must match here:

- tokens are tried in a fixed order at the current position: `(`, `)`, `$[[ inputs.x ]]`,
  `$VAR`, `"..."`/`'...'` (no escapes), `/regex/flags`, `null`, `true`/`false`, `==`, `=~`,
  `!=`, `!~`, `&&`, `||`. Anything else is a syntax error; so are 100 tokens or more.
- precedence: the comparisons bind tighter than `&&`, which binds tighter than `||`; equal
  precedence groups to the left. `&&`/`||` return an operand, Ruby style: only nil and false
  are falsy, so `"" && "x"` is `"x"`.
- a rule matches when the value is *present* (not nil, not false, not blank text).
- `=~`/`!~` with a variable or string on the right: a `/.../flags` string is compiled as a
  pattern; any other string is searched *for the left-hand text* (GitLab calls
  `String#scan(text)` on it), so `$X =~ "abc"` holds when X is a substring of "abc".
- patterns run on RE2 itself (see re2syntax.py), so no pattern can take exponential time; one
  RE2 refuses is a syntax error. Note that GitLab's token grammar needs at least two characters
  between the slashes, so `/a/` is a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.evaluate.re2syntax import RegexSyntaxError, compile_re2

__all__ = ["ExpressionError", "Regexp", "check_syntax", "evaluate", "matches", "present"]

MAX_TOKENS = 100


class ExpressionError(ValueError):
    """The expression cannot be lexed, parsed or evaluated."""


@dataclass(frozen=True)
class Regexp:
    """A compiled `/pattern/flags` value; equal when the sources are equal, as in GitLab."""

    source: str
    flags: str = ""

    @property
    def compiled(self) -> Any:
        return compile_re2(self.source, self.flags)  # RE2, cached by re2syntax

    def search(self, text: str) -> bool:
        return self.compiled.search(text) is not None

    def __str__(self) -> str:
        return f"/{self.source}/{self.flags}"


# GitLab's `RubySyntax`: a string is a pattern when it looks like /body/flags (Ruby ^/$ are
# line anchors, and `.` stops at newlines).
_RUBY_SYNTAX = re.compile(r"^/(?P<body>[^\n]*)/(?P<flags>[ismU]*)$", re.M)


def _fabricate_regexp(text: str) -> Regexp:
    found = _RUBY_SYNTAX.search(text)
    if not found:
        raise ExpressionError("Invalid regular expression!")
    regexp = Regexp(found.group("body"), found.group("flags"))
    try:
        regexp.compiled  # noqa: B018 - compiling is the validity check
    except RegexSyntaxError as exc:
        raise ExpressionError(f"Invalid regular expression! {exc}") from exc
    return regexp


# --- tokens -------------------------------------------------------------------------------

_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_TOKEN_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("(", re.compile(r"\(")),
    (")", re.compile(r"\)")),
    ("input", re.compile(r"\$\[\[[ \t\r\n\f\v]*inputs\.(?P<name>[A-Za-z0-9_]+)[ \t\r\n\f\v]*\]\]")),
    ("variable", re.compile(r"\$(?P<name>[A-Za-z0-9_]+)")),
    ("string", re.compile(r"\"(?P<dq>[^\n]*?)\"|'(?P<sq>[^\n]*?)'")),
    # a slash, then non-slashes or escaped slashes, a last character that is not a backslash,
    # a slash and flags; GitLab's grammar, so `/a/` (one character) is not a pattern
    ("pattern", re.compile(r"/(?:[^/]|\\/)+[^\\]/[ismU]*")),
    ("null", re.compile(r"null")),
    ("boolean", re.compile(r"(?<![A-Za-z0-9_])(?:true|false)(?![A-Za-z0-9_])")),
    ("==", re.compile(r"==")),
    ("=~", re.compile(r"=~")),
    ("!=", re.compile(r"!=")),
    ("!~", re.compile(r"!~")),
    ("&&", re.compile(r"&&")),
    ("||", re.compile(r"\|\|")),
]
_PRECEDENCE = {"==": 10, "=~": 10, "!=": 10, "!~": 10, "&&": 11, "||": 12, ")": 900, "(": 901}
_OPERATORS = {"==", "=~", "!=", "!~", "&&", "||"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    match: re.Match[str]
    column: int


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    for _ in range(MAX_TOKENS):
        space = _SPACE.match(expression, pos)
        if space:
            pos = space.end()
        if pos >= len(expression):
            return tokens
        for kind, pattern in _TOKEN_PATTERNS:
            found = pattern.match(expression, pos)
            if found and found.end() > pos:
                tokens.append(_Token(kind, found.group(0), found, pos + 1))
                pos = found.end()
                break
        else:
            rest = expression[pos : pos + 20]
            raise ExpressionError(f"Unknown lexeme found at column {pos + 1}: `{rest}`")
    raise ExpressionError(f"Too many tokens! (at most {MAX_TOKENS - 1})")


# --- tree ---------------------------------------------------------------------------------

Node = Callable[[Mapping[str, Any]], Any]


def _value_node(token: _Token) -> Node:
    kind, found = token.kind, token.match
    if kind == "null":
        return lambda _variables: None
    if kind == "boolean":
        value = token.text == "true"
        return lambda _variables: value
    if kind == "string":
        text = found.group("dq") if found.group("dq") is not None else found.group("sq")
        return lambda _variables: text
    if kind == "variable":
        name = found.group("name")
        return lambda variables: variables.get(name)
    if kind == "input":
        name = found.group("name")
        return lambda variables: _input(variables, name)
    # pattern: `\/` stands for `/`; validity is checked now, at parse time, as GitLab does
    regexp = _fabricate_regexp(token.text.replace("\\/", "/"))
    return lambda _variables: regexp


def _input(variables: Mapping[str, Any], name: str) -> Any:
    inputs = variables.get("inputs")
    return inputs.get(name) if isinstance(inputs, Mapping) else None


def _operator_node(op: str, left: Node, right: Node) -> Node:
    if op == "&&":
        return lambda v: _and(left(v), right, v)
    if op == "||":
        return lambda v: _or(left(v), right, v)
    if op == "==":
        return lambda v: _ruby_equal(left(v), right(v))
    if op == "!=":
        return lambda v: not _ruby_equal(left(v), right(v))
    if op == "=~":
        return lambda v: _match(left(v), right(v))
    return lambda v: not _match(left(v), right(v))


def _and(left: Any, right: Node, variables: Mapping[str, Any]) -> Any:
    return right(variables) if _ruby_truthy(left) else left


def _or(left: Any, right: Node, variables: Mapping[str, Any]) -> Any:
    return left if _ruby_truthy(left) else right(variables)


def _match(text: Any, pattern: Any) -> bool:
    """Whether `pattern` finds something in `text` (GitLab's `Matches`; `!~` negates it)."""
    if pattern is None or pattern is False:
        return False
    subject = _ruby_to_s(text)
    if isinstance(pattern, Regexp):
        return pattern.search(subject)
    if not isinstance(pattern, str):
        raise ExpressionError(f"cannot match against {type(pattern).__name__}")
    try:
        regexp = _fabricate_regexp(pattern.replace("\\/", "/"))
    except ExpressionError:
        # not a pattern: GitLab scans the string *for the text*, i.e. a substring test
        return subject in pattern
    return regexp.search(subject)


def _parse(expression: str) -> Node:
    tokens = _tokenize(expression)
    if not tokens:
        raise ExpressionError("The expression is empty")
    # shunting-yard into reverse Polish notation, exactly as GitLab orders it
    output: list[_Token] = []
    stack: list[_Token] = []

    def consumes(token: _Token) -> bool:
        return bool(stack) and _PRECEDENCE[token.kind] >= _PRECEDENCE[stack[-1].kind]

    for token in tokens:
        if token.kind in _OPERATORS:
            while consumes(token):
                output.append(stack.pop())
            stack.append(token)
        elif token.kind == "(":
            stack.append(token)
        elif token.kind == ")":
            while consumes(token):
                output.append(stack.pop())
            if not stack:
                raise ExpressionError(f"Unmatched parenthesis at column {token.column}")
            stack.pop()
        else:
            output.append(token)
    output.extend(reversed(stack))

    results: list[Node] = []
    for token in output:
        if token.kind == "(":
            raise ExpressionError(f"Unmatched parenthesis at column {token.column}")
        if token.kind in _OPERATORS:
            right = results.pop() if results else None
            left = results.pop() if results else None
            if left is None or right is None:
                side = "left" if left is None else "right"
                raise ExpressionError(
                    f"Invalid {side} operand of `{token.text}` at column {token.column}"
                )
            results.append(_operator_node(token.kind, left, right))
        else:
            results.append(_value_node(token))
    if len(results) > 1:
        raise ExpressionError("Unreachable nodes in parse tree (a missing operator?)")
    return results[0]


_PARSED: dict[str, Node] = {}


def _parsed(expression: str) -> Node:
    node = _PARSED.get(expression)
    if node is None:
        node = _PARSED[expression] = _parse(expression)
    return node


# --- Ruby value semantics ------------------------------------------------------------------


def _ruby_truthy(value: Any) -> bool:
    return value is not None and value is not False


def present(value: Any) -> bool:
    """Rails' `present?`: not nil, not false, not blank text, not an empty collection."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict, set)):
        return bool(value)
    return True


def _ruby_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return left == right
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _ruby_to_s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- public API ----------------------------------------------------------------------------


def evaluate(expression: str, variables: Mapping[str, Any]) -> object:
    """GitLab's raw value of `expression` (None for nil); raises ExpressionError."""
    return _parsed(expression)(variables)


def matches(expression: str, variables: Mapping[str, Any]) -> bool:
    """Whether a rule with this `if` matches; a syntax error never matches."""
    try:
        return present(evaluate(expression, variables))
    except ExpressionError:
        return False


def check_syntax(expression: str) -> str | None:
    """Why `expression` is not valid, or None when it is."""
    try:
        _parsed(expression)
    except ExpressionError as exc:
        return str(exc)
    return None
