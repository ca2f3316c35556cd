"""Short forms GitLab accepts become one long form, so consumers read a single shape."""

from __future__ import annotations

import pytest

from runner.config.models import (
    DefaultConfig,
    JobConfig,
    PipelineConfig,
    parse_duration,
)
from runner.config.validate import ignored_keys, validate_job, validate_shape
from runner.config.yamlload import load_yaml


def job(text: str) -> JobConfig:
    document = load_yaml(text, "ci.yml")
    model, problems = validate_job("j", document["j"])
    assert not problems, [str(p) for p in problems]
    assert model is not None
    return model


def test_image_string_and_hash_forms_are_one_shape():
    short = job("j: {script: x, image: alpine}")
    assert short.image.name == "alpine"
    assert short.image.pull_policy == []
    assert short.image.entrypoint is None
    long = job(
        """
j:
  script: x
  image:
    name: ubuntu
    entrypoint: [""]
    pull_policy: if-not-present
    docker: {user: me, platform: linux/arm64}
"""
    )
    assert long.image.entrypoint == [""]
    assert long.image.pull_policy == ["if-not-present"]
    assert (long.image.docker.user, long.image.docker.platform) == ("me", "linux/arm64")


def test_services_strings_hashes_and_comma_separated_aliases():
    model = job(
        """
j:
  script: x
  services:
    - postgres:16
    - name: redis
      alias: cache, kv
      command: [redis-server, --port, "6380"]
      variables: {A: 1}
      pull_policy: [always, never]
"""
    )
    first, second = model.services
    assert (first.name, first.alias, first.command) == ("postgres:16", [], None)
    assert second.alias == ["cache", "kv"]
    assert second.command == ["redis-server", "--port", "6380"]
    assert second.variables["A"].value == "1"
    assert second.pull_policy == ["always", "never"]


def test_scripts_are_lists_of_lines_with_nested_lists_flattened():
    model = job(
        """
j:
  before_script: echo one
  script: [[echo a, echo b], echo c]
  after_script: []
"""
    )
    assert model.before_script == ["echo one"]
    assert model.script == ["echo a", "echo b", "echo c"]
    assert model.after_script == []


def test_needs_forms():
    model = job(
        """
j:
  script: x
  needs:
    - build
    - {job: lint, artifacts: false, optional: true}
    - {pipeline: $PARENT, job: gen}
    - {job: test, parallel: {matrix: [{OS: [linux, mac], N: 1}]}}
"""
    )
    build, lint, gen, test = model.needs
    assert (build.job, build.artifacts, build.optional) == ("build", True, False)
    assert (lint.artifacts, lint.optional) == (False, True)
    assert gen.pipeline == "$PARENT"
    assert test.parallel_matrix == [{"OS": ["linux", "mac"], "N": ["1"]}]
    assert job("j: {script: x}").needs is None
    assert job("j: {script: x, needs: []}").needs == []


def test_cache_one_or_many_and_key_forms():
    single = job("j: {script: x, cache: {key: k1, paths: [a]}}")
    assert len(single.cache) == 1
    assert single.cache[0].key.value == "k1"
    assert single.cache[0].policy == "pull-push"
    many = job(
        """
j:
  script: x
  cache:
    - key: {files: [Gemfile.lock], prefix: ruby}
      paths: [vendor]
      policy: pull
    - paths: [node_modules]
"""
    )
    files, default = many.cache
    assert (files.key.files, files.key.prefix, files.policy) == (["Gemfile.lock"], "ruby", "pull")
    assert default.key.value == "default"


def test_artifacts_reports_become_lists():
    model = job(
        """
j:
  script: x
  artifacts:
    paths: [dist/]
    when: always
    reports:
      junit: report.xml
      dotenv: [build.env]
"""
    )
    assert model.artifacts.reports == {"junit": ["report.xml"], "dotenv": ["build.env"]}
    assert model.artifacts.when == "always"


def test_rules_if_alias_changes_and_exists_forms():
    model = job(
        """
j:
  script: x
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
      changes: [src/**/*]
      when: manual
      allow_failure: true
      variables: {DEPLOY: 1}
    - changes: {paths: [README.md], compare_to: main}
      exists: [Dockerfile]
    - when: delayed
      start_in: 10 minutes
"""
    )
    first, second, third = model.rules
    assert first.if_ == '$CI_COMMIT_BRANCH == "main"'
    assert first.changes.paths == ["src/**/*"]
    assert first.variables == {"DEPLOY": "1"}
    assert (second.changes.compare_to, second.exists.paths) == ("main", ["Dockerfile"])
    assert third.start_in == "10 minutes"


def test_only_except_alias_and_list_form():
    model = job("j: {script: x, only: [main, tags], except: {variables: [$SKIP]}}")
    assert model.only.refs == ["main", "tags"]
    assert model.except_.variables == ["$SKIP"]


def test_retry_allow_failure_parallel_inherit():
    model = job(
        """
j:
  script: x
  retry: 2
  allow_failure: {exit_codes: 137}
  parallel: 3
  inherit: {default: [image], variables: false}
"""
    )
    assert (model.retry.max, model.retry.when, model.retry.exit_codes) == (2, ["always"], [])
    assert (model.allow_failure.allowed, model.allow_failure.exit_codes) == (False, [137])
    assert (model.parallel.count, model.parallel.matrix) == (3, None)
    assert (model.inherit.default, model.inherit.variables) == (["image"], False)
    other = job("j: {script: x, allow_failure: true, retry: {max: 1, when: script_failure}}")
    assert other.allow_failure.allowed is True
    assert other.retry.when == ["script_failure"]
    matrix = job("j: {script: x, parallel: {matrix: [{A: x, B: [1, 2]}]}}")
    assert matrix.parallel.matrix == [{"A": ["x"], "B": ["1", "2"]}]


def test_variables_long_and_short_forms():
    pipeline = PipelineConfig.model_validate(
        load_yaml(
            """
variables:
  PLAIN: text
  NUMBER: 42
  FLAG: true
  123: numeric name
  RAW: {value: $X, expand: false}
  CHOICE: {value: a, options: [a, b], description: pick one}
""",
            "ci.yml",
        ),
        context={"shape": True},  # booleans are schema-valid; GitLab's processor refuses them
    )
    variables = pipeline.variables
    assert variables["NUMBER"].value == "42"
    assert variables["FLAG"].value == "true"
    assert variables["123"].value == "numeric name"
    assert (variables["RAW"].value, variables["RAW"].expand) == ("$X", False)
    assert variables["CHOICE"].options == ["a", "b"]
    assert pipeline.stages == ["build", "test", "deploy"]
    assert pipeline.all_stages() == [".pre", "build", "test", "deploy", ".post"]


def test_stages_with_nested_lists_are_flattened():
    pipeline = PipelineConfig.model_validate({"stages": ["a", ["b", "c"], "d"]})
    assert pipeline.stages == ["a", "b", "c", "d"]


def test_default_section():
    default = DefaultConfig.model_validate(
        {"image": "ruby", "retry": 1, "before_script": "setup", "tags": ["x"]}
    )
    assert (default.image.name, default.retry.max, default.before_script) == ("ruby", 1, ["setup"])


def test_environment_and_trigger_short_forms_and_ignored_keys():
    model = job(
        """
j:
  script: x
  tags: [docker]
  interruptible: true
  environment: production
  resource_group: prod
"""
    )
    assert model.environment.name == "production"
    assert ignored_keys(model) == ["tags", "interruptible", "environment", "resource_group"]
    bridge = job("j: {trigger: group/project}")
    assert bridge.trigger.project == "group/project"
    assert ignored_keys(bridge) == []  # bridges run their child pipelines (child_pipeline.py)
    assert ignored_keys(job("j: {script: x, image: alpine}")) == []


def test_when_never_is_schema_valid_but_not_for_a_job_gitlab_runs():
    document = load_yaml("j: {script: x, when: never}", "ci.yml")
    assert validate_shape(document, "ci.yml") == []
    _, problems = validate_job("j", document["j"])
    assert [p.message for p in problems] == [
        "jobs:j when should be one of: on_success, on_failure, always, manual, delayed"
    ]


def test_references_are_accepted_by_the_shape_check():
    document = load_yaml(
        """
.setup:
  script: [echo setup]
j:
  script:
    - !reference [.setup, script]
    - echo main
  variables: !reference [.vars, variables]
k: !reference [.setup]
variables: !reference [.vars, variables]
""",
        "ci.yml",
    )
    assert validate_shape(document, "ci.yml") == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h 30m", 5400),
        ("3 hours", 10800),
        ("90 minutes", 5400),
        ("1d", 86400),
        ("10 min", 600),
        ("3 hours 30 minutes", 12600),
        ("1 hour and 30 minutes", 5400),
        ("2 weeks", 1209600),
        ("45", 45),
        ("1:30", 5400),
        ("1.5h", 5400),
        ("1h30m", 5400),
        ("2 hrs, 15 mins", 8100),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1 fortnight", "h", "3 hours later"])
def test_parse_duration_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_yaml_1_1_keys_are_named_as_gitlab_names_them():
    # psych reads `on`/`off`/`yes` keys as booleans; GitLab turns them back into "true"/"false"
    model = job("j: {script: x, variables: {on: 1, off: 0}}")
    assert list(model.variables) == ["true", "false"]
