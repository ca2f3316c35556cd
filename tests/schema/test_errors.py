"""Each problem is one line naming file:line:column, job and key, in GitLab's words; every
problem of a file is reported, not just the first."""

from __future__ import annotations

import pytest

from runner.config.validate import validate_job, validate_pipeline, validate_shape
from runner.config.yamlload import load_yaml
from runner.core.errors import ConfigError


def lines(text: str) -> list[str]:
    return [str(problem) for problem in validate_shape(load_yaml(text, "ci.yml"), "ci.yml")]


def test_unknown_keys_are_one_line_at_the_first_unknown_key():
    assert lines(
        """
build:
  scriptt: make
  image: alpine
  imagee: x
"""
    ) == ["ci.yml:3:3: jobs:build config contains unknown keys: scriptt, imagee"]


def test_every_job_and_every_key_is_reported():
    problems = validate_shape(
        load_yaml(
            """
stages: [1]
a:
  script: x
  when: sometimes
  retry: 5
b:
  cache: {key: a/b}
  parallel: "3"
""",
            "ci.yml",
        ),
        "ci.yml",
    )
    assert [(str(p.location), p.job, p.key, p.message) for p in problems] == [
        ("ci.yml:2:1", None, "stages", "stages config should be an array of strings"),
        (
            "ci.yml:5:3",
            "a",
            "when",
            "jobs:a when should be one of: on_success, on_failure, always, manual, delayed, never",
        ),
        ("ci.yml:6:3", "a", "retry", "jobs:a:retry config should be an integer from 0 to 2"),
        ("ci.yml:8:11", "b", "cache", 'jobs:b:cache:key config cannot contain the "/" character'),
        ("ci.yml:9:3", "b", "parallel", "jobs:b:parallel should be an integer or a hash"),
    ]


def test_nested_positions_point_at_the_offending_item():
    assert lines(
        """
test:
  script: x
  services:
    - postgres
    - name: redis
      pull_policy: sometimes
"""
    ) == [
        "ci.yml:7:7: jobs:test:services:service:pull_policy config should be one of: always, "
        "never, if-not-present"
    ]


def test_key_without_value():
    assert lines("j:\n  script: x\n  image:\n") == [
        "ci.yml:3:3: jobs:j:image config can't be blank"
    ]


def test_global_keywords_are_checked_as_such():
    assert lines(
        """
default:
  secrets: {}
variables:
  A: {value: x, desc: typo}
workflow:
  rules:
    - when: manual
j: {script: x}
"""
    ) == [
        "ci.yml:3:3: default config contains unknown keys: secrets",
        "ci.yml:5:3: variables:A config uses invalid data keys: desc",
        "ci.yml:8:7: workflow:rules:rule when unknown value: manual",
    ]


def test_a_job_that_is_not_a_hash():
    assert lines("script: echo hi\n") == ["ci.yml:1:1: jobs:script config should be a hash"]


def test_shape_check_is_lenient_where_the_schema_is():
    # hidden jobs may be anything; a job needs no script (it may come from extends or an
    # include); only: and rules: may be null
    assert (
        lines(
            """
.template: [1, 2]
.vars: {A: b}
deploy:
  extends: .template
  stage: deploy
  only:
  rules: null
"""
        )
        == []
    )


def test_a_job_gitlab_runs_needs_a_script_run_or_trigger():
    document = load_yaml("build:\n  stage: build\n  tags: [x]\n", "ci.yml")
    model, problems = validate_job("build", document["build"])
    assert model is not None
    assert [str(p) for p in problems] == [
        "ci.yml:2:3: jobs build config should implement the script:, run:, or trigger: keyword"
    ]


def test_full_check_adds_what_gitlab_checks_on_a_job():
    document = load_yaml(
        """
j:
  script: x
  start_in: 5 minutes
  timeout: whenever
""",
        "ci.yml",
    )
    assert validate_shape(document, "ci.yml") == []
    _, problems = validate_job("j", document["j"])
    assert [str(p) for p in problems] == [
        "ci.yml:4:3: jobs:j start in must be blank",
        "ci.yml:5:3: jobs:j:timeout config should be a duration",
    ]


def test_delayed_without_start_in_is_left_to_the_full_check_when_the_job_extends_another():
    document = load_yaml(".t: {start_in: 1 hour}\nj: {extends: .t, script: x, when: delayed}", "f")
    assert validate_shape(document, "f") == []


def test_delayed_needs_start_in_in_both_checks():
    document = load_yaml("j: {script: x, when: delayed}", "ci.yml")
    expected = "jobs:j config start_in should be a duration when `when` is delayed"
    assert [p.message for p in validate_shape(document, "ci.yml")] == [expected]
    assert [p.message for p in validate_job("j", document["j"])[1]] == [expected]


def test_validate_pipeline_checks_stages_and_raises_every_problem():
    document = load_yaml(
        """
stages: [build, test]
compile:
  stage: build
  script: make
lint:
  stage: check
  script: lint
docs:
  stage: build
  scriptt: x
""",
        "ci.yml",
    )
    globals_ = {"stages": document["stages"]}
    jobs = {name: document[name] for name in ("compile", "lint", "docs")}
    with pytest.raises(ConfigError) as info:
        validate_pipeline(globals_, jobs)
    assert [str(p) for p in info.value.problems] == [
        "ci.yml:7:3: lint job: chosen stage check does not exist; available stages are "
        ".pre, build, test, .post",
        "ci.yml:10:3: jobs docs config should implement the script:, run:, or trigger: keyword",
        "ci.yml:11:3: jobs:docs config contains unknown keys: scriptt",
    ]


def test_validate_pipeline_returns_the_models():
    document = load_yaml(
        """
variables: {A: "1"}
default: {image: alpine}
.hidden: {script: x}
build: {script: make}
test: {script: check, needs: [build]}
""",
        "ci.yml",
    )
    globals_ = {key: document[key] for key in ("variables", "default")}
    jobs = {name: document[name] for name in (".hidden", "build", "test")}
    pipeline = validate_pipeline(globals_, jobs)
    assert list(pipeline.jobs) == ["build", "test"]
    assert pipeline.jobs["test"].needs[0].job == "build"
    assert pipeline.default.image.name == "alpine"
    assert pipeline.variables["A"].value == "1"


def test_no_visible_job():
    document = load_yaml(".a: {script: x}", "ci.yml")
    with pytest.raises(ConfigError) as info:
        validate_pipeline({}, {".a": document[".a"]})
    assert [p.message for p in info.value.problems] == [
        "jobs config should contain at least one visible job"
    ]


def test_when_keys_are_worded_as_gitlab_words_them():
    assert lines(
        """
j:
  script: x
  artifacts: {when: sometimes}
  cache: {when: never}
  rules:
    - when: later
"""
    ) == [
        "ci.yml:4:15: jobs:j:artifacts when should be on_success, on_failure or always",
        "ci.yml:5:11: jobs:j:cache when should be one of: on_success, on_failure, always",
        "ci.yml:7:7: jobs:j:rules:rule when unknown value: later",
    ]


def test_only_except_start_in_may_not_be_used_with_rules():
    document = load_yaml(
        "j: {script: x, rules: [{when: manual}], only: [main], start_in: 1 day}", "ci.yml"
    )
    assert validate_shape(document, "ci.yml") == []
    _, problems = validate_job("j", document["j"])
    assert [p.message for p in problems] == [
        "jobs:j config key may not be used with `rules`: only, start_in"
    ]


def test_limits_gitlab_adds_to_its_schema():
    document = load_yaml(
        """
j:
  script: x
  cache: [{paths: [a]}, {paths: [b]}, {paths: [c]}, {paths: [d]}, {paths: [e]}]
  parallel:
    matrix:
      - {A: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], B: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}
      - {C: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], D: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
""",
        "ci.yml",
    )
    assert validate_shape(document, "ci.yml") == []
    _, problems = validate_job("j", document["j"])
    assert [str(p) for p in problems] == [
        "ci.yml:4:3: jobs:j:cache config no more than 4 caches can be created",
        "ci.yml:6:5: jobs:j:parallel:matrix config generates too many jobs (maximum is 200)",
    ]
    long_name = "x" * 256
    _, problems = validate_job(long_name, load_yaml("j: {script: x}", "ci.yml")["j"])
    assert [p.message for p in problems] == [
        f"jobs:{long_name} name is too long (maximum is 255 characters)"
    ]


def test_script_run_and_trigger_exclude_each_other_in_a_job_gitlab_runs():
    document = load_yaml("j: {script: x, trigger: group/project}", "ci.yml")
    assert validate_shape(document, "ci.yml") == []  # the schema lets both through
    assert [p.message for p in validate_job("j", document["j"])[1]] == [
        "jobs:j config these keys cannot be used together: script, trigger"
    ]


def test_publish_only_in_a_pages_job():
    document = load_yaml(
        """
pages: {script: x, publish: site}
docs: {script: x, publish: site, pages: true}
other: {script: x, publish: site}
disabled: {script: x, publish: site, pages: false}
""",
        "ci.yml",
    )
    messages = {
        name: [p.message for p in validate_job(name, document[name])[1]] for name in document
    }
    assert messages == {
        "pages": [],
        "docs": [],
        "other": ["jobs:other publish can only be used within a `pages` job"],
        "disabled": ["jobs:disabled publish can only be used within a `pages` job"],
    }


def test_dependencies_must_be_part_of_needs():
    document = load_yaml("j: {script: x, needs: [a], dependencies: [a, b]}", "ci.yml")
    assert [p.message for p in validate_job("j", document["j"])[1]] == [
        "jobs:j dependencies the b should be part of needs"
    ]


def test_all_of_a_jobs_processor_problems_are_reported_together():
    document = load_yaml(
        """
j:
  script: x
  trigger: group/project
  rules: [{when: manual}]
  only: [main]
  timeout: someday
  publish: public
""",
        "ci.yml",
    )
    assert [str(p) for p in validate_job("j", document["j"])[1]] == [
        "ci.yml:3:3: jobs:j config key may not be used with `rules`: only",
        "ci.yml:3:3: jobs:j config these keys cannot be used together: script, trigger",
        "ci.yml:7:3: jobs:j:timeout config should be a duration",
        "ci.yml:8:3: jobs:j publish can only be used within a `pages` job",
    ]


def test_variables_take_any_scalar_as_gitlabs_scalar_validator_does():
    # GitLab's `Variable` entry: a `SimpleVariable` is any scalar (String, Symbol, Integer,
    # Float, true, false); anything else that is not a hash is an unknown strategy.
    document = load_yaml(
        """
j:
  script: x
  variables: {FLAG: true, OFF: false, VERSION: 1.10, COUNT: 3, H: {value: 2.50}, L: [a]}
""",
        "ci.yml",
    )
    assert [str(p) for p in validate_job("j", document["j"])[1]] == [
        "ci.yml:4:82: jobs:j:variables:L variable definition must be either a string or a hash",
    ]


def test_a_variable_value_must_be_one_of_its_options():
    document = load_yaml("variables: {CHOICE: {value: c, options: [a, b]}}\nj: {script: x}", "f")
    assert validate_shape(document, "f") == []
    with pytest.raises(ConfigError) as info:
        validate_pipeline({"variables": document["variables"]}, {"j": document["j"]})
    assert [str(p) for p in info.value.problems] == [
        "f:1:13: variables:CHOICE config value must be present in options"
    ]


def test_shape_check_leaves_unresolved_values_to_the_full_check():
    # a required key given by !reference, a whole value from a spec input, include paths
    # with a variable or a wildcard (GitLab expands them; its schema does not know)
    assert (
        lines(
            """
include:
  - local: ${CI_INCLUDE_LOCAL}
  - configs/**.yml
j:
  image:
    name: !reference [.images, alpine]
    entrypoint: [""]
  rules: $[[ inputs.rules ]]
  interruptible: $[[ inputs.interruptible ]]
  script: x
"""
        )
        == []
    )


def test_an_unresolved_value_does_not_hide_other_problems():
    assert lines(
        """
j:
  image: {name: !reference [.images, alpine], pull_policy: sometimes}
  script: x
"""
    ) == [
        "ci.yml:3:47: jobs:j:image:pull_policy config should be one of: always, never, "
        "if-not-present"
    ]


def test_keys_without_value_are_unset_for_gitlabs_processor():
    document = load_yaml("j:\n  script: x\n  image:\n  variables:\n    EMPTY:\n", "ci.yml")
    assert [p.message for p in validate_shape(document, "ci.yml")] == [
        "jobs:j:image config can't be blank",
        "jobs:j:variables:EMPTY variable definition must be either a string or a hash",
    ]
    model, problems = validate_job("j", document["j"])
    assert problems == []
    assert model.image is None
    assert model.variables["EMPTY"].value is None
    _, problems = validate_job("empty", None)
    assert [p.message for p in problems] == [
        "jobs empty config should implement the script:, run:, or trigger: keyword"
    ]


def test_names_gitlab_refuses_in_inputs_and_steps():
    assert lines(
        """
include:
  - local: a.yml
    inputs: {"bad/name": 1}
j:
  run:
    - name: step
      script: echo
      env: {"1BAD": x}
"""
    ) == [
        "ci.yml:4:5: include:inputs config contains an invalid input name: bad/name",
        "ci.yml:9:7: jobs:j:run:env config has an invalid name: 1BAD",
    ]
