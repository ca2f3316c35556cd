"""`parallel: N` and `parallel:matrix`: one configured job becomes several, named as GitLab does.

`parallel: 3` on `test` gives `test 1/3`, `test 2/3`, `test 3/3`. `parallel:matrix` gives one job
per combination of each matrix entry's values, named `test: [a, b]` after the values in the order
the keys are written, and carries the combination as job variables (they win over the job's own
`variables:` of the same name). Every instance gets `CI_NODE_INDEX` (1-based) and
`CI_NODE_TOTAL`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# `$[[ matrix.NAME ]]` in a matrix job's `needs` stands for that job's own value of NAME
MATRIX_EXPRESSION = re.compile(r"\$\[\[\s*matrix\.([a-zA-Z0-9_-]+)\s*\]\]")


@dataclass(frozen=True)
class Instance:
    """One job created from a configured job; `index`/`total` are None without `parallel`."""

    name: str
    base: str
    index: int | None = None
    total: int | None = None
    matrix: dict[str, str] = field(default_factory=dict)


def matrix_combinations(matrix: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every combination, entry by entry, keys in written order (a scalar is a one-item list)."""
    combos: list[dict[str, str]] = []
    for entry in matrix:
        keys = list(entry)
        value_lists = [_as_list(entry[key]) for key in keys]
        for values in itertools.product(*value_lists):
            combos.append(dict(zip(keys, values, strict=True)))
    return combos


def matrix_job_name(base: str, variables: Mapping[str, str]) -> str:
    return f"{base}: [{', '.join(variables.values())}]"


def parallel_job_name(base: str, index: int, total: int) -> str:
    return f"{base} {index}/{total}"


def expand_job(
    name: str, count: int | None, matrix: Sequence[Mapping[str, Any]] | None
) -> list[Instance]:
    """The jobs one configured job becomes: itself, N numbered copies, or one per combination."""
    if matrix:
        combos = matrix_combinations(matrix)
        total = len(combos)
        return [
            Instance(matrix_job_name(name, combo), name, index, total, combo)
            for index, combo in enumerate(combos, start=1)
        ]
    if count:
        return [
            Instance(parallel_job_name(name, index, count), name, index, count)
            for index in range(1, count + 1)
        ]
    return [Instance(name, name)]


def selected_names(base: str, matrix: Sequence[Mapping[str, Any]]) -> list[str]:
    """The job names a `needs: [{job: base, parallel: {matrix: ...}}]` selector stands for."""
    return [matrix_job_name(base, combo) for combo in matrix_combinations(matrix)]


def _as_list(value: Any) -> list[str]:
    values = value if isinstance(value, list | tuple) else [value]
    return [_scalar_text(item) for item in values]


def _scalar_text(value: Any) -> str:
    # YAML gives numbers and booleans; GitLab names jobs and sets variables from their text
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def interpolate_matrix(text: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with every `$[[ matrix.NAME ]]` replaced, and the NAMEs the matrix lacks."""
    missing: list[str] = []

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in values:
            missing.append(name)
            return found.group(0)
        return values[name]

    return MATRIX_EXPRESSION.sub(value, text), missing


def uses_matrix_expressions(texts: Sequence[str]) -> bool:
    return any(MATRIX_EXPRESSION.search(text) for text in texts)
