"""rules, only/except, workflow:rules and include:rules as GitLab evaluates them."""

from pathlib import Path

import pytest

from runner.evaluate.rules import (
    RuleContext,
    RuleError,
    evaluate_only_except,
    evaluate_rules,
    evaluate_workflow,
    include_rules_match,
)

BRANCH_VARS = {
    "CI_COMMIT_BRANCH": "feature",
    "CI_COMMIT_REF_NAME": "feature",
    "CI_PIPELINE_SOURCE": "push",
    "CI_DEFAULT_BRANCH": "main",
    "CI_PROJECT_PATH": "group/app",
}


def ctx(variables=None, changed=None, project_dir=Path("/nonexistent")):
    return RuleContext(
        variables=BRANCH_VARS if variables is None else variables,
        project_dir=project_dir,
        changed_files=changed,
    )


class TestRules:
    def test_first_matching_rule_wins(self):
        rules = [
            {"if": '$CI_COMMIT_BRANCH == "main"', "when": "manual"},
            {"if": "$CI_COMMIT_BRANCH", "when": "delayed", "start_in": "5 min"},
            {"when": "always"},
        ]
        result = evaluate_rules(rules, ctx())
        assert (result.when, result.start_in) == ("delayed", "5 min")

    def test_no_match_or_never_means_no_job(self):
        assert evaluate_rules([{"if": '$CI_COMMIT_BRANCH == "main"'}], ctx()) is None
        assert evaluate_rules([{"if": "$CI_COMMIT_BRANCH", "when": "never"}, {}], ctx()) is None
        assert evaluate_rules([], ctx()) is None

    def test_when_defaults_to_the_jobs_when(self):
        assert evaluate_rules([{}], ctx(), job_when="manual").when == "manual"
        assert evaluate_rules([{}], ctx()).when == "on_success"

    def test_attributes_of_the_matching_rule_only(self):
        rules = [
            {"if": "$NOPE", "variables": {"A": "first"}, "allow_failure": True},
            {"variables": {"A": "second", "N": 3, "B": True}, "needs": ["build"]},
        ]
        result = evaluate_rules(rules, ctx())
        assert result.variables == {"A": "second", "N": "3", "B": "true"}
        assert result.allow_failure is None
        assert result.needs == ["build"]

    def test_rule_variables_are_not_seen_by_later_rules(self):
        rules = [
            {"if": "$NOPE", "variables": {"DEPLOY": "yes"}},
            {"if": "$DEPLOY", "when": "manual"},
        ]
        assert evaluate_rules(rules, ctx()) is None

    def test_a_syntax_error_in_if_does_not_match(self):
        assert evaluate_rules([{"if": "$A = 1"}, {"when": "manual"}], ctx()).when == "manual"

    def test_all_clauses_must_hold(self):
        rules = [{"if": "$CI_COMMIT_BRANCH", "changes": ["docs/**/*"]}]
        assert evaluate_rules(rules, ctx(changed=frozenset({"src/a.py"}))) is None
        assert evaluate_rules(rules, ctx(changed=frozenset({"docs/x/a.md"}))) is not None


class TestChanges:
    def test_without_a_diff_changes_always_holds(self):
        assert evaluate_rules([{"changes": ["nothing/*"]}], ctx(changed=None)) is not None

    def test_an_empty_diff_never_holds(self):
        assert evaluate_rules([{"changes": ["**/*"]}], ctx(changed=frozenset())) is None

    def test_globs_are_expanded_with_known_variables(self):
        variables = {**BRANCH_VARS, "DIR": "services/api"}
        rule = [{"changes": {"paths": ["$DIR/**/*.go"]}}]
        changed = frozenset({"services/api/cmd/main.go"})
        assert evaluate_rules(rule, ctx(variables, changed)) is not None

    def test_compare_to(self, make_repo):
        repo = make_repo()
        repo.commit("one", {"a.txt": "1"})
        repo.repo.create_tag("v1")
        repo.commit("two", {"b.txt": "2"})
        context = ctx(project_dir=repo.root, changed=frozenset())
        holds = [{"changes": {"paths": ["b.txt"], "compare_to": "v1"}}]
        fails = [{"changes": {"paths": ["a.txt"], "compare_to": "v1"}}]
        assert evaluate_rules(holds, context) is not None
        assert evaluate_rules(fails, context) is None
        with pytest.raises(RuleError, match="compare_to is not a valid ref"):
            evaluate_rules([{"changes": {"paths": ["*"], "compare_to": "nope"}}], context)


class TestExists:
    def test_exists_looks_at_project_files(self, make_repo):
        repo = make_repo()
        repo.commit("one", {"Dockerfile": "FROM x", "charts/app/Chart.yaml": "c"})
        context = ctx(project_dir=repo.root)
        assert evaluate_rules([{"exists": ["Dockerfile"]}], context) is not None
        assert evaluate_rules([{"exists": ["dockerfile"]}], context) is None
        assert evaluate_rules([{"exists": {"paths": ["**/Chart.yaml"]}}], context) is not None
        assert evaluate_rules([{"exists": ["charts"]}], context) is None  # files only

    def test_exists_at_a_ref_and_in_this_project(self, make_repo):
        repo = make_repo()
        repo.commit("one", {"old.txt": "1"})
        repo.repo.create_tag("v1")
        repo.repo.git.rm("old.txt")
        repo.commit("two", {"new.txt": "2"})
        context = ctx(project_dir=repo.root)
        at_v1 = {"paths": ["old.txt"], "ref": "v1", "project": "group/app"}
        assert evaluate_rules([{"exists": at_v1}], context) is not None
        assert evaluate_rules([{"exists": ["old.txt"]}], context) is None
        other = {"paths": ["new.txt"], "project": "other/project"}
        assert evaluate_rules([{"exists": other}], context) is None
        with pytest.raises(RuleError, match="not a valid ref"):
            evaluate_rules([{"exists": {"paths": ["x"], "ref": "nope"}}], context)


class TestOnlyExcept:
    def run(self, only, except_=None, *, ref="feature", is_tag=False, source="push", **kw):
        return evaluate_only_except(
            only, except_, ctx(**kw), ref=ref, is_tag=is_tag, pipeline_source=source
        )

    def test_default_is_branches_and_tags(self):
        assert self.run(None)
        assert self.run(None, ref="v1", is_tag=True)
        assert not self.run(None, source="merge_request_event")

    def test_names_keywords_and_regexes(self):
        assert self.run(["main", "feature"])
        assert not self.run(["main"])
        assert self.run(["/^feat/"])
        assert self.run(["/^FEAT/i"])
        assert not self.run(["/^main$/"])
        assert self.run(["pushes"])
        assert self.run(["schedules"], source="schedule")
        assert self.run(["merge_requests"], source="merge_request_event")
        assert self.run(["api"], source="api")
        assert not self.run(["tags"])
        assert self.run({"refs": ["tags"]}, ref="v1", is_tag=True)

    def test_names_do_not_apply_to_merge_request_pipelines(self):
        assert not self.run(["feature", "/.*/"], source="merge_request_event")

    def test_project_path_suffix(self):
        assert self.run(["feature@group/app"])
        assert not self.run(["feature@fork/app"])

    def test_except_removes(self):
        assert not self.run(None, ["/^feat/"])
        assert self.run(None, {"refs": ["main"]})

    def test_variables_and_changes(self):
        assert self.run({"variables": ['$CI_COMMIT_BRANCH == "feature"']})
        assert not self.run({"refs": ["branches"], "variables": ["$NOPE"]})
        assert not self.run(None, {"variables": ["$CI_COMMIT_BRANCH"]})
        assert self.run({"changes": ["*.md"]}, changed=frozenset({"README.md"}))
        assert not self.run({"changes": ["*.md"]}, changed=frozenset({"a.py"}))
        assert self.run({"changes": ["*.md"]}, changed=None)
        # GitLab expands rules:changes paths, but takes only:changes as written
        variables = {**BRANCH_VARS, "EXT": "md"}
        readme = frozenset({"README.md"})
        assert not self.run({"changes": ["*.$EXT"]}, changed=readme, variables=variables)
        assert evaluate_rules([{"changes": ["*.$EXT"]}], ctx(variables, readme)) is not None

    def test_kubernetes_is_never_active_locally(self):
        assert not self.run({"kubernetes": "active"})


class TestWorkflow:
    def test_no_workflow_runs(self):
        result = evaluate_workflow(None, ctx())
        assert result.run and result.variables == {} and result.name is None

    def test_first_match_and_its_variables(self):
        workflow = {
            "name": "Pipeline for $CI_COMMIT_BRANCH ($KIND)",
            "rules": [
                {"if": '$CI_COMMIT_BRANCH == "main"', "variables": {"KIND": "release"}},
                {"if": "$CI_COMMIT_BRANCH", "variables": {"KIND": "dev"}},
            ],
        }
        result = evaluate_workflow(workflow, ctx())
        assert result.run
        assert result.variables == {"KIND": "dev"}
        assert result.name == "Pipeline for feature (dev)"
        assert "rule 2" in result.reason

    def test_no_match_means_no_pipeline_said_plainly(self):
        result = evaluate_workflow({"rules": [{"if": "$CI_COMMIT_TAG"}]}, ctx())
        assert not result.run
        assert "filtered out by workflow rules" in result.reason
        assert "no rule" in result.reason

    def test_when_never(self):
        workflow = {"rules": [{"if": "$CI_COMMIT_BRANCH", "when": "never"}, {"when": "always"}]}
        result = evaluate_workflow(workflow, ctx())
        assert not result.run
        assert "never" in result.reason


def test_include_rules():
    assert include_rules_match([{"if": "$CI_COMMIT_BRANCH"}], ctx())
    assert not include_rules_match([{"if": "$CI_COMMIT_TAG"}], ctx())
    assert not include_rules_match([{"if": "$CI_COMMIT_BRANCH", "when": "never"}], ctx())
    assert include_rules_match([{"if": "$CI_COMMIT_TAG"}, {"when": "always"}], ctx())
