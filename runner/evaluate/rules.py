"""`rules`, `only`/`except`, `workflow:rules` and `include:rules`, evaluated as GitLab does.

Rules (GitLab's Build::Rules): the first rule whose clauses (`if`, `changes`, `exists`) all
hold decides; its `when` (default: the job's `when`) and its attributes apply. No rule matching,
or `when: never`, means the job is not created. A rule's `variables` apply only when that rule
is the one that matched; they are not seen by the `if` of later rules.

`only`/`except` (GitLab's Build::Policy): every `only` part must hold and no `except` part may.
A job with neither `rules` nor `only` gets GitLab's default `only: [branches, tags]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.evaluate.changes import ChangesError, local_changed_files
from runner.evaluate.expression import matches
from runner.evaluate.globs import glob_match, list_project_files
from runner.evaluate.re2syntax import RegexSyntaxError, compile_re2
from runner.evaluate.variables import expand, expand_existing

__all__ = [
    "RuleContext",
    "RuleError",
    "RuleResult",
    "WorkflowResult",
    "evaluate_only_except",
    "evaluate_rules",
    "evaluate_workflow",
    "include_rules_match",
]

DEFAULT_ONLY: Mapping[str, Any] = {"refs": ["branches", "tags"]}
_CLAUSES = ("if", "changes", "exists")


class RuleError(ValueError):
    """A rule that cannot be evaluated (GitLab fails the pipeline: 'Failed to parse rule')."""


@dataclass(frozen=True)
class RuleContext:
    """What rules are evaluated against.

    `variables` are the unexpanded values GitLab gives `if` (its `variables_hash`);
    `changed_files` None means there is no diff, and then `changes` always holds (GitLab's
    behaviour for pipelines without a push diff, such as new branches and tags).
    """

    variables: Mapping[str, str]
    project_dir: Path
    changed_files: frozenset[str] | None
    # per-context memo of expensive look-ups (project files, compare_to diffs)
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def project_files(self, ref: str | None = None) -> list[str]:
        key = ("files", ref)
        if key not in self._memo:
            self._memo[key] = (
                list_project_files(self.project_dir) if ref is None else _files_at(self, ref)
            )
        return self._memo[key]

    def changed_since(self, compare_to: str) -> frozenset[str] | None:
        key = ("compare_to", compare_to)
        if key not in self._memo:
            try:
                self._memo[key] = local_changed_files(self.project_dir, compare_to)
            except ChangesError as exc:
                raise RuleError(str(exc)) from exc
        return self._memo[key]


def _files_at(ctx: RuleContext, ref: str) -> list[str]:
    from runner import gitrepo

    listed = gitrepo.output(
        ctx.project_dir, "ls-tree", "-r", "-z", "--name-only", f"{ref}^{{tree}}"
    )
    if listed is None:
        project = ctx.variables.get("CI_PROJECT_PATH", "")
        raise RuleError(f"rules:exists:ref `{ref}` is not a valid ref in project `{project}`")
    return sorted(p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p)


@dataclass(frozen=True)
class RuleResult:
    when: str
    allow_failure: bool | None
    variables: dict[str, str]
    needs: list | None
    start_in: str | None


@dataclass(frozen=True)
class WorkflowResult:
    run: bool
    variables: dict[str, str]
    name: str | None
    reason: str


# --- clauses -------------------------------------------------------------------------------


def _as_paths(spec: Any) -> tuple[list[str], Mapping[str, Any]]:
    """`changes`/`exists` as a list of globs plus the mapping form's other keys."""
    if isinstance(spec, Mapping):
        paths = spec.get("paths") or []
        return ([paths] if isinstance(paths, str) else [str(p) for p in paths]), spec
    if isinstance(spec, str):
        return [spec], {}
    return [str(p) for p in spec or []], {}


def _changes_hold(spec: Any, ctx: RuleContext, *, expand_globs: bool = True) -> bool:
    """rules:changes (globs expanded with known variables) or only:changes (taken as written)."""
    globs, options = _as_paths(spec)
    if options.get("compare_to") is not None:
        changed = ctx.changed_since(expand_existing(str(options["compare_to"]), ctx.variables))
    else:
        changed = ctx.changed_files
    if changed is None:
        return True
    if not changed:
        return False
    if expand_globs:
        globs = [expand_existing(g, ctx.variables) for g in globs]
    unique = list(dict.fromkeys(globs))
    return any(glob_match(glob, path) for path in changed for glob in unique)


def _exact_glob(glob: str) -> bool:
    return not any(c in glob for c in "*?[{")


def _exists_holds(spec: Any, ctx: RuleContext) -> bool:
    globs, options = _as_paths(spec)
    ref = options.get("ref")
    project = options.get("project")
    if project is not None:
        project = expand_existing(str(project), ctx.variables)
        if project != ctx.variables.get("CI_PROJECT_PATH"):
            return False  # another project's files are out of reach of a local run
        if not globs:
            return False
    files = ctx.project_files(expand_existing(str(ref), ctx.variables) if ref else None)
    expanded = [expand_existing(g, ctx.variables) for g in globs]
    exact = {g for g in expanded if _exact_glob(g)}
    if exact.intersection(files):
        return True
    patterns = [g for g in expanded if not _exact_glob(g)]
    return any(glob_match(glob, path) for glob in patterns for path in files)


def _rule_holds(rule: Mapping[str, Any], ctx: RuleContext) -> bool:
    if "if" in rule and not matches(str(rule["if"]), ctx.variables):
        return False
    if "changes" in rule and not _changes_hold(rule["changes"], ctx):
        return False
    return not ("exists" in rule and not _exists_holds(rule["exists"], ctx))


def _first_match(
    rules: Sequence[Mapping[str, Any]], ctx: RuleContext
) -> tuple[int, Mapping[str, Any]] | None:
    for index, rule in enumerate(rules):
        if _rule_holds(rule, ctx):
            return index, rule
    return None


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):  # the long form {value: ..., description: ...}
        return _string(value.get("value", ""))
    return "" if value is None else str(value)


def _rule_variables(rule: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): _string(v) for k, v in (rule.get("variables") or {}).items()}


# --- rules ---------------------------------------------------------------------------------


def evaluate_rules(
    rules: Sequence[Mapping[str, Any]], ctx: RuleContext, *, job_when: str = "on_success"
) -> RuleResult | None:
    """The matching rule's outcome, or None when the job is not created.

    Raises RuleError when a rule cannot be evaluated (an invalid `compare_to` or `exists:ref`);
    GitLab then refuses the pipeline with "Failed to parse rule for <job>: <message>".
    """
    found = _first_match(rules, ctx)
    if found is None:
        return None
    _, rule = found
    when = str(rule.get("when") or job_when)
    if when == "never":
        return None
    needs = rule.get("needs")
    start_in = rule.get("start_in")
    return RuleResult(
        when=when,
        allow_failure=rule.get("allow_failure"),
        variables=_rule_variables(rule),
        needs=list(needs) if needs is not None else None,
        start_in=str(start_in) if start_in is not None else None,
    )


def include_rules_match(rules: Sequence[Mapping[str, Any]], ctx: RuleContext) -> bool:
    """Whether an `include` with these `rules` is included (a match whose when is not never)."""
    found = _first_match(rules, ctx)
    return found is not None and found[1].get("when") != "never"


def evaluate_workflow(workflow: Mapping[str, Any] | None, ctx: RuleContext) -> WorkflowResult:
    """Whether the pipeline is created at all, its `workflow:rules` variables and its name."""
    workflow = workflow or {}
    rules = workflow.get("rules")
    name = workflow.get("name")
    if rules is None:
        return WorkflowResult(True, {}, _pipeline_name(name, ctx.variables), "no workflow:rules")
    found = _first_match(rules, ctx)
    if found is None:
        return WorkflowResult(
            False,
            {},
            None,
            "Pipeline filtered out by workflow rules: no rule of workflow:rules matched",
        )
    index, rule = found
    described = f"workflow:rules rule {index + 1}" + (
        f" (if: {rule['if']})" if "if" in rule else ""
    )
    if rule.get("when") == "never":
        return WorkflowResult(
            False, {}, None, f"Pipeline filtered out by workflow rules: {described} says never"
        )
    variables = _rule_variables(rule)
    name_text = _pipeline_name(name, {**ctx.variables, **variables})
    return WorkflowResult(True, variables, name_text, f"{described} matched")


def _pipeline_name(name: Any, variables: Mapping[str, str]) -> str | None:
    if name is None:
        return None
    return expand(str(name), variables) or None


# --- only / except ---------------------------------------------------------------------------


def _policy(spec: Any) -> Mapping[str, Any]:
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return spec
    if isinstance(spec, str):
        return {"refs": [spec]}
    return {"refs": list(spec)}


def _pluralize(word: str) -> str:
    return word + "es" if re.search(r"(x|ch|ss|sh)$", word) else word + "s"


def _ref_matches(pattern: str, *, ref: str, is_tag: bool, is_branch: bool, source: str) -> bool:
    if is_tag and pattern == "tags":
        return True
    if is_branch and pattern == "branches":
        return True
    source = source.removesuffix("_event")
    if pattern in (source, _pluralize(source)):
        return True
    if not (is_branch or is_tag):  # names and patterns only apply to branch or tag pipelines
        return False
    regex = re.fullmatch(r"/(.*)/([ismU]*)", pattern, re.S)
    if regex is None:
        return pattern == ref
    try:
        return compile_re2(regex.group(1), regex.group(2)).search(ref) is not None
    except RegexSyntaxError:
        # GitLab falls back to Ruby's engine for what RE2 rejects; Python's is the nearest
        try:
            return re.search(regex.group(1), ref) is not None
        except re.error:
            return False


def _policy_holds(
    policy: Mapping[str, Any],
    ctx: RuleContext,
    *,
    ref: str,
    is_tag: bool,
    is_branch: bool,
    source: str,
) -> list[bool]:
    """One truth value per part of the policy (refs, variables, changes, kubernetes)."""
    results: list[bool] = []
    if "refs" in policy:
        refs = policy["refs"]
        refs = [refs] if isinstance(refs, str) else list(refs or [])
        project = ctx.variables.get("CI_PROJECT_PATH")
        results.append(_refs_match(refs, project, ref, is_tag, is_branch, source))
    if "variables" in policy:
        expressions = policy["variables"]
        expressions = [expressions] if isinstance(expressions, str) else expressions or []
        results.append(any(matches(str(e), ctx.variables) for e in expressions))
    if "changes" in policy:
        results.append(_changes_hold(policy["changes"], ctx, expand_globs=False))
    if "kubernetes" in policy:
        results.append(False)  # no deployment platform in a local run
    return results


def _refs_match(
    refs: Sequence[Any], project: str | None, ref: str, is_tag: bool, is_branch: bool, source: str
) -> bool:
    """Any of `refs` matches; `name@group/project` only in that project."""
    for entry in refs:
        name, _, path = str(entry).partition("@")
        if path and path != project:
            continue
        if _ref_matches(name, ref=ref, is_tag=is_tag, is_branch=is_branch, source=source):
            return True
    return False


def evaluate_only_except(
    only: Mapping | None,
    except_: Mapping | None,
    ctx: RuleContext,
    *,
    ref: str,
    is_tag: bool,
    pipeline_source: str,
) -> bool:
    """Whether a job with these `only`/`except` is created (None only: GitLab's default)."""
    is_branch = not is_tag and pipeline_source != "merge_request_event"
    facts = dict(ref=ref, is_tag=is_tag, is_branch=is_branch, source=pipeline_source)
    only_policy = DEFAULT_ONLY if only is None else _policy(only)
    if not all(_policy_holds(only_policy, ctx, **facts)):
        return False
    return not any(_policy_holds(_policy(except_), ctx, **facts))
