"""Read YAML the way GitLab does (Ruby's psych, YAML 1.1) while remembering where each value was.

libyaml (psych's own parser, through PyYAML) turns the text into events; yamlcompose.py makes
nodes of them under GitLab's size and depth limits; this module builds the values itself
instead of using PyYAML's constructors, for three reasons:

- positions: every mapping and list becomes a `YamlMap` / `YamlList` with `.loc`, `.key_locs`
  and `.item_locs`, relative to the project directory, 1-based;
- psych's scalar rules, which differ from PyYAML's in small ways that change pipelines:
  `True`, `oN` and `NULL` are matched case-insensitively, `1,000` is an integer, an unquoted
  date or timestamp is refused (GitLab's safe loader does not permit Ruby's Date/Time classes);
- psych's merge keys: `<<` merges in the order it is written (keys written before it are
  overwritten by it), a list of anchors is merged so that the first one wins, and an anchor may
  be redefined later in the file (PyYAML refuses that).

`!reference [job, key]` becomes a `Reference`, resolved later on the merged configuration.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

from runner.config.limits import MAX_YAML_DEPTH, MAX_YAML_SIZE_BYTES, TOO_BIG
from runner.config.rubysize import scalar_size, string_size
from runner.config.source import YamlList, YamlMap
from runner.config.yamlcompose import PLAIN_TAG, EventSource, TooBig, compose_documents
from runner.core.errors import ConfigError, Location, Problem, ProblemCollector

REFERENCE_TAG = "!reference"
_PLAIN = PLAIN_TAG


@dataclass(frozen=True)
class Reference:
    """An unresolved `!reference [job, key, ...]`: where it was written and what it points at."""

    path: tuple[str, ...]
    loc: Location

    def __str__(self) -> str:
        return f"{REFERENCE_TAG} {ruby_inspect(list(self.path))}"


def ruby_inspect(value: Any) -> str:
    """How Ruby's `inspect` prints a YAML value; GitLab puts it into some error messages."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(ruby_inspect(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{ruby_inspect(k)} => {ruby_inspect(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return str(value)


# --- psych's scalar scanner (YAML 1.1 as Ruby reads it) -------------------------------------

_WORDISH = re.compile(r"[^\d.:-]?[A-Za-z_\s!@#$%^&*(){}<>|/\\~;=]+")
_TIME = re.compile(
    r"-?\d{4}-\d{1,2}-\d{1,2}(?:[Tt]|\s+)\d{1,2}:\d\d:\d\d(?:\.\d*)?(?:\s*(?:Z|[-+]\d{1,2}:?(?:\d\d)?))?"
)
_DATE = re.compile(r"\d{4}-(?:1[012]|0\d|\d)-(?:[12]\d|3[01]|0\d|\d)")
_BASE60_INT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+")
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*")
_FLOAT = re.compile(
    r"[-+]?(?:[0-9][0-9_,]*)?\.[0-9]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_INTEGER = re.compile(r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+")


class DisallowedClass(ValueError):
    """An unquoted date or time: GitLab's YAML loader refuses to build Ruby Date/Time objects."""


class HugeInteger(ValueError):
    """An integer longer than Python converts to and from text (sys.get_int_max_str_digits())."""


def psych_scalar(text: str) -> Any:
    """The value psych gives an unquoted scalar (see psych's ScalarScanner#tokenize)."""
    if text == "":
        return None
    if _WORDISH.match(text) or "\n" in text:
        if len(text) > 5 or re.match(r"[^ytonf~]", text, re.IGNORECASE):
            return text
        if text == "~" or re.fullmatch(r"null", text, re.IGNORECASE):
            return None
        if re.fullmatch(r"yes|true|on", text, re.IGNORECASE):
            return True
        if re.fullmatch(r"no|false|off", text, re.IGNORECASE):
            return False
        return text
    if _TIME.fullmatch(text):
        raise DisallowedClass("Time")
    if _DATE.fullmatch(text):
        raise DisallowedClass("Date")
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    if _BASE60_INT.fullmatch(text):
        return _base60(text, int)
    if _BASE60_FLOAT.fullmatch(text):
        return _base60(text, float)
    if _FLOAT.fullmatch(text):
        if re.fullmatch(r"[-+]?\.", text):
            return text
        return float(re.sub(r"[,_]|\.$", "", text))
    digits = re.sub(r"[,_]", "", text)
    if _INTEGER.fullmatch(digits):
        return _ruby_integer(digits)
    return text


def _base60(text: str, kind: type) -> Any:
    sign = -1 if text.startswith("-") else 1
    total: Any = kind(0)
    for part in text.lstrip("+-").replace("_", "").split(":"):
        total = total * 60 + (_ruby_integer(part) if kind is int else kind(part))
    return sign * _checked(total) if kind is int else sign * total


def _ruby_integer(digits: str) -> int:
    """Ruby's Integer of the text. Ruby has no limit on digits; Python refuses to convert
    decimal text of more than sys.get_int_max_str_digits() digits either way (a guard against
    quadratic time), so such a number is refused here, in one line, whatever its base."""
    sign = -1 if digits.startswith("-") else 1
    body = digits.lstrip("+-")
    if body.startswith(("0b", "0x")):
        return sign * _checked(int(body, 0))
    if len(body) > 1 and body.startswith("0"):
        return sign * _checked(int(body, 8))
    limit = sys.get_int_max_str_digits()
    if limit and len(body.lstrip("0")) > limit:
        raise HugeInteger(limit)
    return sign * int(body)


def _checked(value: int) -> int:
    """`value`, if Python can print it (the check above, for numbers not written in decimal)."""
    limit = sys.get_int_max_str_digits()
    # 10 ** limit has 3.32 * limit bits; below 3.32 * (limit - 1) bits it surely prints
    if limit and value.bit_length() > (limit - 1) * 3.32:
        raise HugeInteger(limit)
    return value


_EXPLICIT = {
    "tag:yaml.org,2002:null": lambda text: None,
    "tag:yaml.org,2002:bool": lambda text: psych_scalar(text) if text else False,
    "tag:yaml.org,2002:int": lambda text: _ruby_integer(re.sub(r"[,_]", "", text)),
    "tag:yaml.org,2002:float": lambda text: float(re.sub(r"[,_]", "", text)),
}


# --- the parser: libyaml's (psych's own), or PyYAML's Python one without it ----------------


class _PythonParser(Reader, Scanner, Parser):
    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)


try:  # libyaml: 30 times faster, and its error messages are the ones GitLab shows (psych's)
    from yaml._yaml import CParser as _Parser
except ImportError:  # PyYAML built without libyaml
    _Parser = _PythonParser  # type: ignore[assignment,misc]


_MAYBE_NOT_TEXT = frozenset("0123456789+-.,")


def _ruby_size(node: ScalarNode) -> int:
    """The Ruby size of the value psych makes of `node` (see rubysize.py).

    Only a short plain scalar (`~`, `no`, `null`...) or one starting like a number can be
    anything but a String, so psych's rules are asked only about those.
    """
    text = node.value
    if node.tag != _PLAIN or (len(text) > 5 and text[0] not in _MAYBE_NOT_TEXT):
        return string_size(text)  # quoted, block or tagged: a String (near enough)
    try:
        return scalar_size(psych_scalar(text))
    except ValueError:  # a date or a huge integer: the builder reports it
        return string_size(text)


# --- building values from nodes --------------------------------------------------------------


class _Builder:
    """Turns composed nodes into YamlMap / YamlList / scalars, collecting problems."""

    def __init__(self, file: str, line_offset: int = 0):
        self.file = file
        self.line_offset = line_offset
        self.problems = ProblemCollector()

    def loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1 + self.line_offset, mark.column + 1)

    def build(self, node: Node) -> Any:
        # the composer has checked the depth and refused cycles: recursion is bounded
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            return self._sequence(node)
        return self._mapping(node)

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag == REFERENCE_TAG:
            self.problems.add(
                f"{REFERENCE_TAG} {ruby_inspect(node.value)} is not valid", self.loc(node)
            )
            return None
        if node.tag == _PLAIN:
            try:
                return psych_scalar(node.value)
            except DisallowedClass as exc:
                self.problems.add(
                    f"Tried to load unspecified class: {exc} (quote the value to keep it a string)",
                    self.loc(node),
                )
                return node.value
            except HugeInteger as exc:
                self.problems.add(_huge_integer_message(exc), self.loc(node))
                return None
        convert = _EXPLICIT.get(node.tag)
        if convert is not None:
            try:
                return convert(node.value)
            except HugeInteger as exc:
                self.problems.add(_huge_integer_message(exc), self.loc(node))
                return None
            except ValueError:
                shown = node.value if len(node.value) <= 40 else node.value[:40] + "..."
                self.problems.add(f"invalid value for {node.tag}: {shown!r}", self.loc(node))
                return None
        # quoted, block, `!!str` and unknown local tags (psych ignores those): the text itself
        return node.value

    def _sequence(self, node: SequenceNode) -> Any:
        items = YamlList(loc=self.loc(node))
        for child in node.value:
            items.append(self.build(child))
            items.item_locs.append(self.loc(child))
        if node.tag == REFERENCE_TAG:
            if items and all(isinstance(item, str) for item in items):
                return Reference(tuple(items), self.loc(node))
            self.problems.add(
                f"{REFERENCE_TAG} {ruby_inspect(list(items))} is not valid", self.loc(node)
            )
            return None
        return items

    def _mapping(self, node: MappingNode) -> Any:
        if node.tag == REFERENCE_TAG:
            self.problems.add(f"{REFERENCE_TAG} {{...}} is not valid", self.loc(node))
            return None
        result = YamlMap(loc=self.loc(node))
        for key_node, value_node in node.value:
            if _is_merge_key(key_node):
                self._merge(result, key_node, value_node)
                continue
            key = self.build(key_node)
            if isinstance(key, (dict, list, Reference)):
                self.problems.add("a mapping key must be a scalar", self.loc(key_node))
                continue
            value = self.build(value_node)
            # psych: a repeated key keeps its first position and takes the last value
            result[key] = value
            result.key_locs[key] = self.loc(key_node)
        return result

    def _merge(self, result: YamlMap, key_node: Node, value_node: Node) -> None:
        value = self.build(value_node)
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            # psych keeps such a `<<` as an ordinary key; GitLab then rejects it as unknown
            result["<<"] = value
            result.key_locs["<<"] = self.loc(key_node)
            return
        merged = YamlMap()
        for source in reversed(sources):  # psych: earlier entries of a list win
            for key, item in source.items():
                merged[key] = item
                merged.key_locs[key] = source.loc_of(key) or self.loc(value_node)
        for key, item in merged.items():
            result[key] = item
            result.key_locs[key] = merged.key_locs[key]


def _huge_integer_message(exc: ValueError) -> str:
    return (
        f"an integer of more than {exc} digits is more than pyci can read "
        "(quote it to keep it a string)"
    )


def _is_merge_key(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _PLAIN and node.value == "<<"


def _syntax_problem(exc: yaml.YAMLError, file: str, line_offset: int) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    location = (
        Location(file, mark.line + 1 + line_offset, mark.column + 1) if mark else Location(file)
    )
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}"
    if context:
        message += f" ({context})"
    return Problem(message, location)


def load_yaml_documents(text: str, file: str, *, line_offset: int = 0) -> list[Any]:
    """Every document of `text` (None for an empty one), with positions relative to `file`.

    `line_offset` is added to every line number, for text cut out of a larger file. A document
    that parses to more than GitLab's `max_yaml_size_bytes`, or nests more than `max_yaml_depth`
    levels, is refused before any value is built (see yamlcompose.py).
    """
    try:
        nodes = _compose(_Parser(text))
    except yaml.YAMLError as exc:
        raise ConfigError([_syntax_problem(exc, file, line_offset)])
    except TooBig as exc:
        mark = exc.mark
        where = (
            Location(file, mark.line + 1 + line_offset, mark.column + 1) if mark else Location(file)
        )
        raise ConfigError.one(f"{TOO_BIG} ({exc.why})", where)
    builder = _Builder(file, line_offset)
    documents = [builder.build(node) for node in nodes]
    builder.problems.raise_if_any()
    return documents


def _compose(parser: EventSource) -> list[Node]:
    try:
        return compose_documents(
            parser, _ruby_size, max_size=MAX_YAML_SIZE_BYTES, max_depth=MAX_YAML_DEPTH
        )
    finally:
        parser.dispose()


def load_yaml(text: str, file: str, *, line_offset: int = 0) -> YamlMap:
    """The one mapping document in `text`; an empty text gives an empty YamlMap."""
    documents = [doc for doc in load_yaml_documents(text, file, line_offset=line_offset)]
    if not documents or (len(documents) == 1 and documents[0] is None):
        return YamlMap(loc=Location(file, 1 + line_offset, 1))
    if len(documents) > 1:
        raise ConfigError.one(
            f"expected one YAML document, found {len(documents)}",
            Location(file, 1 + line_offset, 1),
        )
    document = documents[0]
    if not isinstance(document, YamlMap):
        where = getattr(document, "loc", None) or Location(file, 1 + line_offset, 1)
        raise ConfigError.one("Invalid configuration format", where)
    return document
