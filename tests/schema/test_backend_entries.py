"""Where GitLab's JSON schema is stricter than GitLab's config entries
(`lib/gitlab/ci/config/entry/`), pyci follows the entries: GitLab runs such pipelines every
day. `--shape-only` keeps following the schema, for editors.

Each test names the entry and the rule it was written from."""

from __future__ import annotations

import pytest

from runner.config.models_base import ruby_float_text
from runner.config.validate import validate_job, validate_pipeline, validate_shape
from runner.config.yamlload import load_yaml
from runner.core.errors import ConfigError


def job_problems(text: str) -> list[str]:
    document = load_yaml(text, "ci.yml")
    name = next(iter(document))
    return [str(p) for p in validate_job(str(name), document[name])[1]]


def shape_problems(text: str) -> list[str]:
    return [str(p) for p in validate_shape(load_yaml(text, "ci.yml"), "ci.yml")]


def test_variables_scalar_values_are_exported_as_ruby_to_s():
    # Entry::Variable::SimpleVariable applies to ScalarValidator (String, Symbol, Integer,
    # Float, true, false) and its value is `@config.to_s`; ComplexVariable's `value:` too.
    document = load_yaml(
        "j:\n  script: x\n  variables:\n"
        "    FLAG: true\n    DISABLED: false\n    PY: 3.10\n    BIG: 1.0e+20\n    N: 3\n"
        "    SMALL: 0.00001\n    H: {value: 2.50}\n",
        "ci.yml",
    )
    model, problems = validate_job("j", document["j"])
    assert problems == []
    values = {key: variable.value for key, variable in model.variables.items()}
    assert values == {
        "FLAG": "true",
        "DISABLED": "false",
        "PY": "3.1",
        "BIG": "1.0e+20",
        "N": "3",
        "SMALL": "1.0e-05",
        "H": "2.5",
    }


def test_global_variables_take_scalars_too():
    document = load_yaml("variables: {FLAG: true, PY: 3.10}\nj: {script: x}\n", "ci.yml")
    config = validate_pipeline({"variables": document["variables"]}, {"j": document["j"]})
    assert {k: v.value for k, v in config.variables.items()} == {"FLAG": "true", "PY": "3.1"}


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (3.1, "3.1"),
        (100.0, "100.0"),
        (0.0001, "0.0001"),
        (1e-05, "1.0e-05"),
        (1e16, "1.0e+16"),
        (123456789.125, "123456789.125"),
        (-2.5, "-2.5"),
        (float("inf"), "Infinity"),
        (float("nan"), "NaN"),
    ],
)
def test_ruby_float_to_s(number, text):
    # Ruby's Float#to_s: shortest round-trip digits, fixed notation for decimal exponents
    # from -4 to 16, else `d.de+XX` with a two-digit exponent.
    assert ruby_float_text(number) == text


def test_tags_may_be_an_empty_array():
    # Entry::Tags validates `array_of_strings`, which an empty array satisfies.
    assert job_problems("j:\n  script: x\n  tags: []\n") == []
    assert shape_problems("j:\n  script: x\n  tags: []\n") != []  # the schema's minItems


def test_artifacts_paths_and_exclude_may_be_empty():
    # Entry::Artifacts: `validates :paths, array_of_strings: true` (no presence unless
    # `expose_as` is set); the same for `exclude`.
    text = "j:\n  script: x\n  artifacts:\n    paths: []\n    exclude: []\n"
    assert job_problems(text) == []
    assert shape_problems(text) != []


def test_every_report_type_takes_a_string_or_an_array_of_strings():
    # Entry::Reports: `array_of_strings_or_string` for each type; the schema wants a single
    # string for annotations, accessibility and browser_performance, and a junit path.
    text = (
        "j:\n  script: x\n  artifacts:\n    reports:\n"
        "      annotations: [a.json, b.json]\n      accessibility: [a11y.json]\n"
        "      browser_performance: perf.json\n      junit: []\n"
    )
    assert job_problems(text) == []
    assert shape_problems(text) != []


def test_needs_nested_through_anchors_are_flattened_and_nulls_dropped():
    # Entry::Needs composes `[@config].flatten`; a nil need has no type and is left out.
    text = (
        ".common: &common [a, [b]]\n"
        "j:\n  script: x\n  needs: [*common, null, [[{job: c, artifacts: false}]]]\n"
    )
    document = load_yaml(text, "ci.yml")
    model, problems = validate_job("j", document["j"])
    assert problems == []
    assert [(need.job, need.artifacts) for need in model.needs] == [
        ("a", True),
        ("b", True),
        ("c", False),
    ]


def test_cache_lists_nested_through_anchors_are_flattened():
    # Entry::Caches is a ComposableArray: `[@config].flatten` before each Entry::Cache.
    text = (
        ".c: &c [{key: one, paths: [a]}]\n"
        "j:\n  script: x\n  cache: [*c, [{key: two, paths: [b]}]]\n"
    )
    document = load_yaml(text, "ci.yml")
    model, problems = validate_job("j", document["j"])
    assert problems == []
    assert [cache.key.value for cache in model.cache] == ["one", "two"]


def test_empty_rules_are_blank_for_jobs_and_workflow():
    # Entry::Rules: `validates :config, presence: true`; an empty array is blank.
    assert job_problems("j:\n  script: x\n  rules: []\n") == [
        "ci.yml:3:3: jobs:j:rules config can't be blank"
    ]
    document = load_yaml("workflow:\n  rules: []\nj: {script: x}\n", "ci.yml")
    with pytest.raises(ConfigError) as info:
        validate_pipeline({"workflow": document["workflow"]}, {"j": document["j"]})
    assert [str(p) for p in info.value.problems] == [
        "ci.yml:2:3: workflow:rules config can't be blank"
    ]


def test_stages_may_be_empty_leaving_pre_and_post():
    # Entry::Stages validates `array_of_strings`; the schema's minItems is stricter.
    document = load_yaml("stages: []\nj:\n  stage: .pre\n  script: x\n", "ci.yml")
    config = validate_pipeline({"stages": document["stages"]}, {"j": document["j"]})
    assert config.all_stages() == [".pre", ".post"]
    assert shape_problems("stages: []\nj:\n  script: x\n") != []


def test_exit_codes_may_be_an_empty_array():
    # Entry::AllowFailure and Entry::Retry::FullRetry: `array_of_integers_or_integer`, which
    # an empty array satisfies (the schema wants one at least, and no duplicates).
    text = (
        "j:\n  script: x\n  allow_failure: {exit_codes: []}\n"
        "  retry: {max: 1, exit_codes: [1, 1]}\n"
    )
    document = load_yaml(text, "ci.yml")
    model, problems = validate_job("j", document["j"])
    assert problems == []
    assert (model.allow_failure.exit_codes, model.retry.exit_codes) == ([], [1])
    assert shape_problems(text) != []
