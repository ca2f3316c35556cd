"""GitLab's own schema fixtures, run through `validate_shape` (what `pyci validate --shape-only`
does), case by case as GitLab's spec does: each top-level key K of a fixture is the document
{K: value}; the "global" fixtures give a whole pipeline per key; json_tests are whole documents.

A positive case must give no problem, a negative case at least one. Where pyci knowingly
disagrees, the case is in KNOWN_DISAGREEMENTS with the reason; a listed case that starts to
agree fails too, so the list stays true.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.config.validate import validate_shape
from runner.config.yamlload import load_yaml

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "conformance" / "gitlab-schema"

KNOWN_DISAGREEMENTS = {
    "positive/run.yml::step_using_action": (
        "the fixture is older than the schema it is checked against (README: known skew): "
        "`action:` steps are no longer in GitLab's ci.json, so pyci, like that schema, "
        "rejects the step as having neither step:, func: nor script:"
    ),
}


def _is_global(relative: str) -> bool:
    return "/workflow/auto_cancel/" in f"/{relative}" or relative == "negative/job_inputs.yml"


def _cases() -> list[tuple[str, bool, object]]:
    cases = []
    for kind in ("positive", "negative"):
        for path in sorted((SCHEMA_DIR / kind).rglob("*.yml")):
            relative = path.relative_to(SCHEMA_DIR).as_posix()
            document = load_yaml(path.read_text(), relative)
            for key, value in document.items():
                case = value if _is_global(relative) else {key: value}
                cases.append((f"{relative}::{key}", kind == "positive", case))
    for path in sorted((SCHEMA_DIR / "json_tests").rglob("*.json")):
        relative = path.relative_to(SCHEMA_DIR).as_posix()
        cases.append((relative, "/positive/" in relative, json.loads(path.read_text())))
    return cases


CASES = _cases()


def _agrees(case_id: str, positive: bool, document: object) -> tuple[bool, list[str]]:
    problems = [str(problem) for problem in validate_shape(document, case_id)]
    return (not problems) == positive, problems


def test_fixtures_are_there():
    # 34 + 74 YAML files, 10 + 8 JSON files, as tests/conformance/NOTICE lists them
    files = {case_id.split("::")[0] for case_id, _, _ in CASES}
    assert len(files) == 34 + 74 + 10 + 8
    assert len(CASES) > 380


@pytest.mark.parametrize(
    ("case_id", "positive", "document"), CASES, ids=[case[0] for case in CASES]
)
def test_case_agrees_with_gitlab(case_id, positive, document):
    agrees, problems = _agrees(case_id, positive, document)
    if case_id in KNOWN_DISAGREEMENTS:
        assert not agrees, f"{case_id} now agrees with GitLab: remove it from KNOWN_DISAGREEMENTS"
        return
    expected = "accepted" if positive else "rejected"
    assert agrees, f"GitLab says {expected}; pyci says: {problems or 'no problem'}"


def test_agreement_ratio():
    agreeing = sum(_agrees(*case)[0] for case in CASES)
    ratio = agreeing / len(CASES)
    print(f"schema conformance: {agreeing}/{len(CASES)} cases agree with GitLab ({ratio:.1%})")
    assert ratio >= 0.98
    assert len(CASES) - agreeing == len(KNOWN_DISAGREEMENTS)


def test_negative_cases_name_the_offending_key():
    """Rejections must be for a reason found where the fixture put its mistake: every problem
    of a negative job case names that job (or the global key) in its GitLab path."""
    for case_id, positive, document in CASES:
        if positive or case_id.startswith("json_tests") or "::" not in case_id:
            continue
        relative, key = case_id.split("::")
        if _is_global(relative):
            continue
        for problem in validate_shape(document, case_id):
            assert problem.message.startswith((f"jobs:{key}", key)), (case_id, problem.message)


def _keys(model) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_every_keyword_of_the_schema_has_a_model_field():
    from runner.config.models import (
        ArtifactsConfig,
        CacheConfig,
        DefaultConfig,
        ImageConfig,
        JobConfig,
        PipelineConfig,
        ServiceConfig,
        WorkflowConfig,
    )

    schema = json.loads((SCHEMA_DIR / "ci.json").read_text())
    definitions = schema["definitions"]
    job_keywords = set(definitions["job_template"]["properties"])
    assert job_keywords == _keys(JobConfig)
    # `!reference` is YAML syntax, resolved before validation, not a keyword
    assert set(schema["properties"]["default"]["properties"]) - {"!reference"} == _keys(
        DefaultConfig
    )
    globals_ = set(schema["properties"]) - {"!reference", "pages"}  # `pages` is a job
    assert globals_ == _keys(PipelineConfig) - {"jobs"}
    assert set(schema["properties"]["workflow"]["properties"]) == _keys(WorkflowConfig)
    assert set(definitions["artifacts"]["properties"]) == _keys(ArtifactsConfig)
    assert set(definitions["cache_item"]["properties"]) == _keys(CacheConfig)
    assert set(definitions["image"]["oneOf"][1]["properties"]) == _keys(ImageConfig)
    assert set(definitions["services"]["items"]["oneOf"][1]["properties"]) == _keys(ServiceConfig)
