"""Variable expansion and precedence, as GitLab and gitlab-runner do them together.

A job's variables reach a script in two expansion passes, and both matter:

1. GitLab (`runner_variables`): variables are sorted so that each comes after those it refers
   to, then expanded recursively (`$X`, `${X}`, `%X%`). References to undefined variables stay
   as written, references to file variables and to raw (`expand: false`) variables stay as
   written too (the runner deals with them), `$$` is left alone. A cycle stops this pass (GitLab
   then refuses to create the job: `circular_references` reports it).
2. gitlab-runner (`JobVariables.Expand`): one pass of Go's `os.Expand` over every non-raw value,
   looking names up in the whole list (the last definition wins). `$$` becomes `$`, unknown
   names become '', `$1`/`$*`/... become '', and a reference to a file variable becomes the
   path of the file the runner writes.

`resolve` applies both; `expand` is pass 2 on its own, which is what gitlab-runner does to
`image:`, `services:`, `cache:key` and friends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from runner.core.jobspec import Variable

__all__ = ["circular_references", "expand", "expand_existing", "resolve"]

_SPECIAL = set("*#$@!?-0123456789")
_EMPTY_SPECIALS = set("*#@!?0123456789")  # gitlab-runner maps these to ''; `$` maps to itself
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")


def _shell_name(text: str, start: int) -> tuple[str, int]:
    """Go's getShellName: the name after a `$` at text[start:], and how many chars it took."""
    first = text[start]
    if first == "{":
        if len(text) - start > 2 and text[start + 1] in _SPECIAL and text[start + 2] == "}":
            return text[start + 1], 3
        close = text.find("}", start + 1)
        if close == start + 1:
            return "", 2  # `${}`: bad syntax, eaten
        if close < 0:
            return "", 1  # `${` without `}`: bad syntax, `{` eaten
        return text[start + 1 : close], close - start + 1
    if first in _SPECIAL:
        return first, 1
    end = start
    while end < len(text) and _NAME_CHAR.match(text[end]):
        end += 1
    return text[start:end], end - start


def _go_expand(
    text: str, lookup: Mapping[str, str] | None, get: Callable[[str], str] | None = None
) -> str:
    """Go's os.Expand with gitlab-runner's lookup rules."""
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    j = 0
    while j < len(text):
        if text[j] == "$" and j + 1 < len(text):
            out.append(text[i:j])
            name, width = _shell_name(text, j + 1)
            if not name and width > 0:
                pass  # invalid syntax: the characters are eaten
            elif not name:
                out.append("$")  # `$` not followed by a name stays
            else:
                out.append(get(name) if get else _runner_value(lookup or {}, name))
            j += width
            i = j + 1
        j += 1
    out.append(text[i:])
    return "".join(out)


def _runner_value(variables: Mapping[str, str], name: str) -> str:
    if name == "$":
        return "$"
    if name in _EMPTY_SPECIALS:
        return ""
    return variables.get(name, "")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand `$VAR`, `${VAR}` and `$$` in `text` as gitlab-runner does; unknown names -> ''."""
    return _go_expand(text, variables)


# GitLab's server-side syntax: $$ and %% are left alone, $X, ${X}, %X% are references
_GITLAB_REF = re.compile(
    r"\$\$|%%|\$(?P<a>[A-Za-z_][A-Za-z0-9_]*)|\$\{(?P<b>[A-Za-z_][A-Za-z0-9_]*)?\}"
    r"|%(?P<c>[A-Za-z_][A-Za-z0-9_]*)%"
)


def _reference(found: re.Match[str]) -> str | None:
    return found.group("a") or found.group("b") or found.group("c")


def expand_existing(text: str, variables: Mapping[str, str]) -> str:
    """GitLab's `expand_existing`: known `$X`/`${X}`/`%X%` replaced, everything else kept.

    This is how GitLab expands `rules:changes`, `rules:exists` and `compare_to` paths.
    """

    def replace(found: re.Match[str]) -> str:
        name = _reference(found)
        if name is None or name not in variables:
            return found.group(0)
        return variables[name]

    return _GITLAB_REF.sub(replace, text)


def _depends_on(variable: Variable) -> list[str]:
    if variable.raw or ("$" not in variable.value and "%" not in variable.value):
        return []
    return [name for found in _GITLAB_REF.finditer(variable.value) if (name := _reference(found))]


def _components(variables: Sequence[Variable]) -> list[list[int]]:
    """Strongly connected components (Tarjan) of the reference graph, by index."""
    by_key: dict[str, list[int]] = {}
    for index, variable in enumerate(variables):
        by_key.setdefault(variable.key, []).append(index)
    edges = [
        [child for name in _depends_on(v) for child in by_key.get(name, [])] for v in variables
    ]
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[list[int]] = []
    counter = 0

    def visit(node: int) -> None:
        nonlocal counter
        index_of[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for child in edges[node]:
            if child not in index_of:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index_of[child])
        if low[node] == index_of[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(component)

    for node in range(len(variables)):
        if node not in index_of:
            visit(node)
    return found  # dependencies come before the variables that use them


def circular_references(variables: Sequence[Variable]) -> str | None:
    """GitLab's error for variables that refer to each other in a cycle, or None."""
    cycles = [
        "[" + ", ".join(f'"{variables[i].key}"' for i in sorted(component)) + "]"
        for component in _components(variables)
        if len(component) > 1
    ]
    if not cycles:
        return None
    return "circular variable reference detected: " + ", ".join(cycles)


def _gitlab_pass(variables: Sequence[Variable]) -> list[Variable]:
    """GitLab's sort_and_expand_all(keep_undefined, no file refs, no raw refs), in list order."""
    if circular_references(variables):
        return list(variables)  # GitLab gives up on the whole pass
    out = list(variables)
    # the definitions already expanded, by key: (position in the list, expanded variable);
    # a later definition shadows an earlier one, as the last entry of GitLab's collection does
    current: dict[str, tuple[int, Variable]] = {}

    def replace(found: re.Match[str]) -> str:
        name = _reference(found)
        target = current[name][1] if name in current else None
        if target is None or target.file or target.raw:
            return found.group(0)
        return target.value

    for (index,) in _components(variables):  # no cycles: every component is one variable
        variable = variables[index]
        if _depends_on(variable):
            variable = replace_value(variable, _GITLAB_REF.sub(replace, variable.value))
        out[index] = variable
        if variable.key not in current or current[variable.key][0] < index:
            current[variable.key] = (index, variable)
    return out


def replace_value(variable: Variable, value: str) -> Variable:
    return Variable(
        variable.key,
        value,
        public=variable.public,
        file=variable.file,
        masked=variable.masked,
        raw=variable.raw,
    )


def resolve(variables: Sequence[Variable], *, file_dir: str | None = None) -> dict[str, str]:
    """The final value of each variable, later definitions winning.

    Non-raw values are expanded (GitLab's pass, then gitlab-runner's). A file variable keeps its
    content as its value (the build writes the file); where *another* value refers to it, the
    reference becomes the file's path, `<file_dir>/<KEY>` (gitlab-runner's
    `RUNNER_TEMP_PROJECT_DIR/<KEY>`; without `file_dir`, that variable is used if defined,
    otherwise the content is used).
    """
    staged = _gitlab_pass(variables)
    latest = {variable.key: variable for variable in staged}
    if file_dir is None and "RUNNER_TEMP_PROJECT_DIR" in latest:
        file_dir = latest["RUNNER_TEMP_PROJECT_DIR"].value

    def get(name: str) -> str:
        if name == "$":
            return "$"
        if name in _EMPTY_SPECIALS:
            return ""
        target = latest.get(name)
        if target is None:
            return ""
        if target.file and file_dir is not None:
            return f"{file_dir.rstrip('/')}/{target.key}"
        return target.value

    result: dict[str, str] = {}
    for variable in staged:
        value = variable.value if variable.raw else _go_expand(variable.value, None, get)
        result.pop(variable.key, None)  # keep the order of the winning definition
        result[variable.key] = value
    return result
