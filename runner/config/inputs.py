"""`spec:inputs` headers and `$[[ inputs.x ]]` interpolation, as GitLab does them.

A file may start with a header document (`spec: inputs: ...`) followed by `---` and the
configuration. GitLab splits the text at lines starting with `---` (not the YAML stream: the
configuration document is only parsed after interpolation), checks the given input values against
the header, then replaces every `$[[ ... ]]` block in the configuration *text*: a string value is
inserted as it is, any other value as JSON (`true`, `5`, `["a","b"]`), so an array input can fill
a YAML flow list. This is GitLab's current text interpolation (`ci_text_interpolation`).

A block is `$[[ inputs.NAME | function | ... ]]` with at most three functions: `expand_vars`
(expands the pipeline variables that exist, leaves others untouched), `truncate(offset,length)`
and `posix_escape` (Ruby's Shellwords.shellescape).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

from runner.config.limits import MAX_FILE_BYTES
from runner.config.source import YamlMap
from runner.config.yamlload import load_yaml, load_yaml_documents
from runner.core.errors import ConfigError, Location, ProblemCollector
from runner.evaluate.re2syntax import RegexSyntaxError, compile_re2

_DIVIDER = re.compile(r"^---\s+", re.MULTILINE)
_BLANK = re.compile(r"\A(?:[ \t]*(?:#.*)?(?:\r?\n|\Z))*\Z")
# run by RE2: in Python's re this pattern is cubic on a line of `$[[ $[[ $[[ ...` (10,000 of
# them took 29 s); RE2 finds the same blocks in linear time
_BLOCK = r"\$\[\[\s*(.*?)\s*\]\]"
_VARIABLE = re.compile(
    r"\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|%([A-Za-z_][A-Za-z0-9_]*)%"
)
_TRUNCATE = re.compile(r"truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)?")
_SHELL_SAFE = re.compile(r"[^A-Za-z0-9_\-.,:+/@\n]")

INPUT_TYPES = ("array", "boolean", "number", "string")
INPUT_SPEC_KEYS = ("default", "description", "options", "regex", "type")
MAX_OPTIONS = 50
MAX_FUNCTIONS = 3
MAX_BLOCKS = 10_000  # GitLab's Interpolation::TextTemplate::MAX_BLOCKS: distinct blocks per file
MAX_ACCESS_BYTES = 1024


def load_with_inputs(
    text: str,
    file: str,
    args: Mapping[str, Any] | None,
    problems: ProblemCollector,
    *,
    prefix: str = "",
    args_loc: Location | None = None,
    variables: Mapping[str, str] | None = None,
) -> YamlMap | None:
    """The configuration document of `text`, interpolated with `args` when it has a header.

    Problems go to `problems` (each message starts with `prefix`, GitLab's "`file`: " for an
    included file); None means the file gave nothing usable. An empty file gives an empty map.
    """
    parts = _split_documents(text)
    if len(parts) > 2:
        problems.add(
            f"{prefix}a configuration file holds at most 2 YAML documents "
            "(a `spec:` header, `---`, then the configuration)",
            Location(file, _line_of(text, parts[2][1]), 1),
        )
        return None
    header = None
    content_text, content_start = parts[0] if parts else ("", 0)
    if len(parts) == 2:
        before = len(problems.problems)
        header = _parse(parts[0][0], file, _line_of(text, parts[0][1]) - 1, problems, prefix)
        if len(problems.problems) > before:
            return None
        if isinstance(header, YamlMap) and "spec" in header:
            content_text, content_start = parts[1]
        elif _BLANK.match(parts[1][0]):
            header = None
        else:
            problems.add(
                f"{prefix}the first of two YAML documents must be a `spec:` header",
                Location(file, _line_of(text, parts[0][1]), 1),
            )
            return None
    line_offset = _line_of(text, content_start) - 1
    if header is None:
        if args:
            problems.add(
                f"{prefix}Given inputs not defined in the `spec` section of the included "
                "configuration file",
                args_loc,
            )
            return None
        return _load_content(content_text, file, line_offset, problems, prefix)
    values = _input_values(header, args or {}, problems, prefix, args_loc)
    if values is None:
        return None
    interpolated = _interpolate(
        content_text, values, variables or {}, file, line_offset, problems, prefix
    )
    if interpolated is None:
        return None
    return _load_content(interpolated, file, line_offset, problems, prefix)


def _split_documents(text: str) -> list[tuple[str, int]]:
    """GitLab's MultiDocYaml split at lines starting with `---`; a blank leading piece dropped.

    Each piece comes with the index where it starts in `text`, to keep line numbers right.
    """
    matches = list(islice(_DIVIDER.finditer(text), 3))
    starts = [0, *(match.end() for match in matches)]
    ends = [*(match.start() for match in matches), len(text)]
    pieces = [(text[start:end], start) for start, end in zip(starts, ends, strict=True)]
    if len(pieces) > 1 and _BLANK.match(pieces[0][0]):
        pieces = pieces[1:]
    return pieces


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _parse(text: str, file: str, line_offset: int, problems: ProblemCollector, prefix: str) -> Any:
    try:
        documents = load_yaml_documents(text, file, line_offset=line_offset)
    except ConfigError as exc:
        for problem in exc.problems:
            problems.add(prefix + problem.message, problem.location, problem.job, problem.key)
        return None
    return documents[0] if documents else None


def _load_content(
    text: str, file: str, line_offset: int, problems: ProblemCollector, prefix: str
) -> YamlMap | None:
    try:
        return load_yaml(text, file, line_offset=line_offset)
    except ConfigError as exc:
        for problem in exc.problems:
            problems.add(prefix + problem.message, problem.location, problem.job, problem.key)
        return None


# --- the header: which inputs exist, their types and defaults ---------------------------------


def _input_values(
    header: YamlMap,
    args: Mapping[str, Any],
    problems: ProblemCollector,
    prefix: str,
    args_loc: Location | None,
) -> dict[str, Any] | None:
    before = len(problems.problems)
    specs = _header_specs(header, problems, prefix)
    if specs is None:
        return None
    unknown = [name for name in args if name not in specs]
    if unknown:
        problems.add(f"{prefix}unknown input arguments: {', '.join(map(str, unknown))}", args_loc)
    values: dict[str, Any] = {}
    for name, (spec, spec_loc) in specs.items():
        kind = spec.get("type", "string")
        if kind not in INPUT_TYPES:
            problems.add(
                f"{prefix}unknown input specification for `{name}` "
                f"(valid types: {', '.join(INPUT_TYPES)})",
                spec_loc,
            )
            continue
        value = args.get(name)
        arg_loc = args.loc_of(name) if isinstance(args, YamlMap) else args_loc
        required = "default" not in spec
        if required and value is None:
            problems.add(
                f"{prefix}`{name}` input: required value has not been provided",
                args_loc or spec_loc,
            )
            continue
        if not required:
            report = _reporter(problems, prefix, name, spec_loc)
            _check_value(kind, spec, spec["default"], "default", report)
        if value is not None:
            _check_value(kind, spec, value, "provided", _reporter(problems, prefix, name, arg_loc))
        values[name] = spec.get("default") if value is None else value
    return None if len(problems.problems) > before else values


def _reporter(
    problems: ProblemCollector, prefix: str, name: str, loc: Location | None
) -> Callable[[str], None]:
    def report(message: str) -> None:
        problems.add(f"{prefix}`{name}` input: {message}", loc)

    return report


def _header_specs(
    header: YamlMap, problems: ProblemCollector, prefix: str
) -> dict[str, tuple[dict, Location | None]] | None:
    before = len(problems.problems)
    _unknown_keys(header, ("spec",), "header", problems, prefix)
    spec = header.get("spec")
    if spec is None:
        spec = YamlMap()
    if not isinstance(spec, dict):
        problems.add(f"{prefix}header:spec config should be a hash", header.loc_of("spec"))
        return None
    _unknown_keys(spec, ("inputs", "component", "description"), "header:spec", problems, prefix)
    inputs = spec.get("inputs") or YamlMap()
    if not isinstance(inputs, dict):
        problems.add(
            f"{prefix}header:spec:inputs config should be a hash", _key_loc(spec, "inputs")
        )
        return None
    specs: dict[str, tuple[dict, Location | None]] = {}
    for name, item in inputs.items():
        where = _key_loc(inputs, name)
        path = f"header:spec:inputs:{name}"
        item = YamlMap() if item is None else item
        if not isinstance(item, dict):
            problems.add(f"{prefix}{path} config should be a hash", where)
            continue
        _unknown_keys(item, INPUT_SPEC_KEYS, path, problems, prefix)
        options = item.get("options")
        if options is not None and not isinstance(options, list):
            problems.add(
                f"{prefix}{path} input options should be an array", _key_loc(item, "options")
            )
        elif options is not None and len(options) > MAX_OPTIONS:
            problems.add(
                f"{prefix}{path} config cannot define more than {MAX_OPTIONS} options", where
            )
        if "regex" in item and not isinstance(item["regex"], str):
            problems.add(f"{prefix}{path} input regex should be a string", _key_loc(item, "regex"))
        specs[name] = (item, where)
    return None if len(problems.problems) > before else specs


def _unknown_keys(
    mapping: dict, allowed: tuple[str, ...], path: str, problems: ProblemCollector, prefix: str
) -> None:
    unknown = [key for key in mapping if key not in allowed]
    if unknown:
        problems.add(
            f"{prefix}{path} config contains unknown keys: {', '.join(map(str, unknown))}",
            _key_loc(mapping, unknown[0]),
        )


def _key_loc(mapping: Any, key: Any) -> Location | None:
    return mapping.loc_of(key) if isinstance(mapping, YamlMap) else None


def _check_value(
    kind: str, spec: dict, value: Any, which: str, report: Callable[[str], None]
) -> None:
    """GitLab's per-type checks: type, then `options`, then `regex`."""
    type_ok = {
        "string": isinstance(value, str),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
    }[kind]
    if not type_ok:
        article = "an" if kind == "array" else "a"
        report(f"{which} value is not {article} {kind}")
    options = spec.get("options")
    if options is not None:
        if kind not in ("string", "number"):
            report("Options can only be used with string and number inputs")
        elif value is not None and value is not False and value not in options:
            the = "the " if kind == "number" else ""
            shown = ruby_to_s(value)
            report(
                f"`{shown}` cannot be used because it is not in the list of {the}allowed options"
            )
    if "regex" in spec:
        if kind != "string":
            report("RegEx validation can only be used with string inputs")
        elif isinstance(value, str) and isinstance(spec["regex"], str):
            try:
                # RE2, as GitLab's UntrustedRegexp: a user's pattern never backtracks
                matched = compile_re2(spec["regex"]).search(value) is not None
            except RegexSyntaxError:
                report("invalid regular expression")
                return
            if not matched:
                report(f"{which} value does not match required RegEx pattern")


def ruby_to_s(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


# --- interpolation of the configuration text ------------------------------------------------


def _interpolate(
    text: str,
    inputs: Mapping[str, Any],
    variables: Mapping[str, str],
    file: str,
    line_offset: int,
    problems: ProblemCollector,
    prefix: str,
) -> str | None:
    """`text` with every block replaced, or None after reporting problems.

    GitLab's bounds (Interpolation::TextTemplate): at most MAX_BLOCKS distinct blocks, and the
    result may not grow past what a file may hold (pyci's: one short block repeated with a big
    input would otherwise build gigabytes before the parser could refuse it). A block that is
    wrong is reported once, where it first appears (a repeated mistake is one mistake).
    """
    context = {"inputs": dict(inputs)}
    values: dict[str, tuple[Any, list[str]]] = {}
    parts: list[str] = []
    size = 0
    done = 0  # text[:done] is in parts
    line, counted = 1, 0  # line of text[counted], counted as blocks are met (linear)
    failed = False
    for match in compile_re2(_BLOCK).finditer(text):
        block = match.group(0)
        first = block not in values
        if first:
            if len(values) >= MAX_BLOCKS:
                problems.add(f"{prefix}too many interpolation blocks", Location(file))
                return None
            values[block] = evaluate_block(match.group(1), context, variables)
        value, errors = values[block]
        if errors:
            failed = True
            if first:
                line += text.count("\n", counted, match.start())
                counted = match.start()
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                for error in errors:
                    problems.add(f"{prefix}{error}", Location(file, line_offset + line, column))
            continue
        if failed:
            continue
        shown = (
            value
            if isinstance(value, str)
            else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        )
        parts += (text[done : match.start()], shown)
        size += match.start() - done + len(shown)
        done = match.end()
        if size > MAX_FILE_BYTES:
            problems.add(
                f"{prefix}config too large: more than {MAX_FILE_BYTES:,} bytes once interpolated",
                Location(file),
            )
            return None
    if failed:
        return None
    parts.append(text[done:])
    return "".join(parts)


def evaluate_block(
    data: str, context: Mapping[str, Any], variables: Mapping[str, str]
) -> tuple[Any, list[str]]:
    """The value of one `$[[ data ]]` block, or the errors GitLab reports for it."""
    access, *functions = (part.strip() for part in data.split("|"))
    if access.encode().__len__() > MAX_ACCESS_BYTES:
        return None, ["maximum interpolation expression size exceeded"]
    objects = access.split(".", 4)
    if len(objects) <= 1:
        return None, ["invalid interpolation access pattern"]
    value: Any = context
    for key in objects:
        if not isinstance(value, Mapping) or key not in value:
            return None, [f"unknown interpolation key: `{key}`"]
        value = value[key]
    if len(functions) > MAX_FUNCTIONS:
        return None, ["too many functions in interpolation block"]
    for expression in functions:
        function = _function(expression, variables)
        if function is None:
            return None, [
                f"no function matching `{expression}`: check that the function name, arguments, "
                "and types are correct"
            ]
        name, apply = function
        if not isinstance(value, str):
            return None, [
                f"error in `{name}` function: invalid input type: {name} can only be used with "
                "string inputs"
            ]
        value = apply(value)
    return value, []


def _function(
    expression: str, variables: Mapping[str, str]
) -> tuple[str, Callable[[str], str]] | None:
    if expression == "expand_vars":
        return "expand_vars", lambda value: expand_existing(value, variables)
    if expression == "posix_escape":
        return "posix_escape", posix_escape
    match = _TRUNCATE.fullmatch(expression)
    if match:
        offset, length = int(match.group(1)), int(match.group(2))
        return "truncate", lambda value: value[offset : offset + length]
    return None


def expand_existing(text: str, variables: Mapping[str, str]) -> str:
    """Replace `$NAME`, `${NAME}` and `%NAME%` of variables that exist; leave others as written."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return str(variables[name]) if name in variables else match.group(0)

    return _VARIABLE.sub(replace, text)


def posix_escape(text: str) -> str:
    """Ruby's Shellwords.shellescape: backslash every unsafe byte, quote newlines."""
    if text == "":
        return "''"
    return _SHELL_SAFE.sub(lambda m: "\\" + m.group(0), text).replace("\n", "'\n'")
