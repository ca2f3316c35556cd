"""GitLab's own `rules:if` cases (statement_spec.rb), kept in tests/conformance/."""

import json
from pathlib import Path

import pytest

from runner.evaluate.expression import evaluate, matches

CASES_FILE = Path(__file__).resolve().parents[1] / "conformance" / "rules-if-cases.json"


def _cases() -> list[tuple[str, dict, str, object]]:
    data = json.loads(CASES_FILE.read_text())
    return [
        (group["kind"], group["variables"], case["expr"], case["expect"])
        for group in data["groups"]
        for case in group["cases"]
    ]


def test_all_99_cases_are_there():
    assert len(_cases()) == 99


@pytest.mark.parametrize(("kind", "variables", "expr", "expect"), _cases())
def test_case_agrees_with_gitlab(kind, variables, expr, expect):
    if kind == "evaluate":
        result = evaluate(expr, variables)
        assert result == expect and type(result) is type(expect)
    else:
        assert matches(expr, variables) is expect
