"""The planner on validated configurations built by hand (no include/expand involved)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from runner.config.validate import validate_pipeline
from runner.core.jobspec import AllowFailure, Need
from runner.evaluate.predefined import read_git_facts
from runner.plan.planner import Planner
from runner.project import ProjectOptions

GLOBAL_KEYS = {"variables", "stages", "workflow", "default"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("repo")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=path, env=env)
    return path


def plan(repo: Path, text: str, cli: dict[str, str] | None = None):
    document = yaml.safe_load(text)
    jobs = {key: value for key, value in document.items() if key not in GLOBAL_KEYS}
    globals_ = {key: value for key, value in document.items() if key in GLOBAL_KEYS}
    config = validate_pipeline(globals_, jobs)
    opts = ProjectOptions(repo, repo / ".gitlab-ci.yml", cli or {})
    planner = Planner(config, jobs, opts, read_git_facts(repo))
    problems = planner.check_references()
    workflow = planner.decide_workflow()
    specs, excluded, more = planner.plan(workflow) if workflow.run else ([], [], [])
    return planner, workflow, {spec.name: spec for spec in specs}, excluded, problems + more


def test_variable_precedence_predefined_global_job_matrix_rules_cli(repo):
    _, _, jobs, _, _ = plan(
        repo,
        """
variables: {A: global, B: global, C: global, D: global, E: global, CI_JOB_STAGE: mine}
job:
  script: echo
  variables: {B: job, C: job, D: job, E: job}
  parallel: {matrix: [{C: matrix}]}
  rules:
    - if: $B == "job" && $C == "matrix"
      variables: {D: rule, E: rule}
""",
        {"E": "cli"},
    )
    spec = jobs["job: [matrix]"]
    assert [spec.variable(key) for key in "ABCDE"] == ["global", "job", "matrix", "rule", "cli"]
    assert spec.variable("CI_JOB_STAGE") == "mine"  # YAML wins over predefined
    assert spec.variable("CI_NODE_INDEX") == "1" and spec.variable("CI_NODE_TOTAL") == "1"
    keys = [variable.key for variable in spec.variables]
    assert len(keys) == len(set(keys))
    assert keys.index("CI_PIPELINE_ID") < keys.index("CI_JOB_NAME") < keys.index("A")


def test_inherit_variables_and_workflow_variables(repo):
    _, workflow, jobs, _, _ = plan(
        repo,
        """
variables: {A: global, B: global}
workflow:
  name: run $A
  rules: [{if: $CI_COMMIT_BRANCH == "main", variables: {A: workflow}}]
some:
  script: echo
  inherit: {variables: [B]}
all:
  script: echo
none:
  script: echo
  inherit: {variables: false}
""",
    )
    assert workflow.name == "run workflow"
    assert jobs["all"].variable("A") == "workflow"
    assert (jobs["some"].variable("A"), jobs["some"].variable("B")) == (None, "global")
    assert jobs["none"].variable("B") is None


def test_allow_failure_defaults_follow_gitlab(repo):
    _, _, jobs, _, _ = plan(
        repo,
        """
manual_job: {script: echo, when: manual}
manual_by_rule: {script: echo, rules: [{when: manual}]}
rule_allows: {script: echo, allow_failure: {exit_codes: [3]}, rules: [{allow_failure: true}]}
codes: {script: echo, allow_failure: {exit_codes: [1, 2]}}
""",
    )
    assert jobs["manual_job"].allow_failure == AllowFailure(True)
    assert jobs["manual_by_rule"].allow_failure == AllowFailure(False)
    assert jobs["rule_allows"].allow_failure == AllowFailure(True)
    assert jobs["codes"].allow_failure == AllowFailure(False, (1, 2))


def test_delayed_start_in_and_rules_override_when(repo):
    _, _, jobs, _, _ = plan(
        repo,
        """
later: {script: echo, when: delayed, start_in: 5 minutes}
by_rule: {script: echo, rules: [{when: delayed, start_in: 1 hour}]}
""",
    )
    assert (jobs["later"].when, jobs["later"].start_in) == ("delayed", 300)
    assert (jobs["by_rule"].when, jobs["by_rule"].start_in) == ("delayed", 3600)


def test_needs_of_left_out_jobs_error_unless_optional(repo):
    _, _, jobs, excluded, problems = plan(
        repo,
        """
stages: [build, test]
gone: {stage: build, script: echo, rules: [{if: $NOPE}]}
maybe: {stage: build, script: echo, rules: [{if: $NOPE, when: never}, {when: never}]}
uses: {script: echo, needs: [{job: maybe, optional: true}]}
breaks: {script: echo, needs: [gone]}
""",
    )
    assert jobs["uses"].needs == ()
    assert [(e.name, e.reason) for e in excluded] == [
        ("gone", "rules: no rule matched"),
        ("maybe", "rules: rule 2 says when: never"),
    ]
    assert [p.message for p in problems] == [
        "'breaks' job needs 'gone' job, but 'gone' does not exist in the pipeline. This might be "
        "because of the only, except, or rules keywords. To need a job that sometimes does not "
        "exist in the pipeline, use needs:optional."
    ]


def test_rules_needs_replace_the_job_needs(repo):
    _, _, jobs, _, _ = plan(
        repo,
        """
stages: [build, test]
a: {stage: build, script: echo}
b: {stage: build, script: echo}
t:
  script: echo
  needs: [a]
  rules: [{if: $CI_COMMIT_BRANCH, needs: [{job: b, artifacts: false}]}]
""",
    )
    assert jobs["t"].needs == (Need("b", artifacts=False),)


def test_cycle_among_same_stage_needs(repo):
    _, _, _, _, problems = plan(
        repo,
        """
a: {script: echo, needs: [b]}
b: {script: echo, needs: [c]}
c: {script: echo, needs: [a]}
""",
    )
    assert [p.message for p in problems][:1] == [
        "The pipeline has circular dependencies: a -> b -> c -> a"
    ]


def test_only_except_and_default_only(repo):
    _, _, jobs, excluded, _ = plan(
        repo,
        """
plain: {script: echo}
tags_only: {script: echo, only: [tags]}
not_main: {script: echo, except: [main]}
by_var: {script: echo, only: {variables: [$GO == "1"]}}
""",
        {"GO": "1"},
    )
    assert sorted(jobs) == ["by_var", "plain"]
    assert [e.name for e in excluded] == ["tags_only", "not_main"]


def test_pipeline_order_is_stage_then_file_order_and_ignored_keys(repo):
    planner, _, jobs, _, _ = plan(
        repo,
        """
stages: [one, two]
late: {stage: .post, script: echo}
b: {stage: two, script: echo, tags: [x]}
a: {stage: one, script: echo, interruptible: true}
early: {stage: .pre, script: echo}
""",
    )
    assert list(jobs) == ["early", "a", "b", "late"]
    assert [jobs[n].stage_index for n in jobs] == [0, 1, 2, 3]
    assert planner.ignored == (("b", "tags"), ("a", "interruptible"))
    assert jobs["b"].ignored_keys == ("tags",)


def test_environment_gives_deployment_variables_below_yaml_ones(repo):
    _, _, jobs, _, _ = plan(
        repo,
        """
deploy:
  script: echo
  variables: {APP: shop, CI_ENVIRONMENT_TIER: mine}
  environment: {name: review/$APP, url: https://$APP.example.com, deployment_tier: staging}
""",
    )
    spec = jobs["deploy"]
    assert spec.variable("CI_ENVIRONMENT_NAME") == "review/shop"
    assert spec.variable("CI_ENVIRONMENT_SLUG") == "review-shop-7bz9cx"  # not the name: suffixed
    assert spec.variable("CI_ENVIRONMENT_URL") == "https://shop.example.com"
    assert spec.variable("CI_ENVIRONMENT_ACTION") == "start"
    assert spec.variable("CI_ENVIRONMENT_TIER") == "mine"
    assert spec.environment == "review/shop"


def test_more_than_fifty_needs_is_gitlabs_error(repo):
    jobs = "\n".join(f"b{i}: {{stage: build, script: echo}}" for i in range(51))
    names = ", ".join(f"b{i}" for i in range(51))
    _, _, _, _, problems = plan(repo, f"{jobs}\nt: {{script: echo, needs: [{names}]}}\n")
    assert [p.message for p in problems] == [
        "t: one job can only need 50 others, but you have listed 51. "
        "See needs keyword documentation for more details"
    ]


def test_needs_of_other_pipelines_are_dropped_and_reported(repo):
    planner, _, jobs, _, problems = plan(
        repo,
        """
stages: [build, test]
b: {stage: build, script: echo}
t:
  script: echo
  needs:
    - b
    - {pipeline: $PARENT_PIPELINE_ID, job: gen}
    - {project: group/other, job: lib, ref: main}
""",
    )
    assert problems == []
    assert [need.job for need in jobs["t"].needs] == ["b"]
    assert planner.ignored == (("t", "needs:pipeline"), ("t", "needs:project"))
