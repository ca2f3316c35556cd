"""Whether one job is created, and how: its `rules` (or `only`/`except`) decided.

GitLab's order: a job with `rules` is decided by the first rule whose clauses hold (its `when`,
`allow_failure`, `variables`, `needs`, `start_in`); no rule holding, or `when: never`, means the
job is not created. A job without `rules` is decided by `only`/`except` (GitLab's default
`only: [branches, tags]` when neither is written). The reason a job is left out is kept in
words for `pyci list --all` and `pyci run JOB`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.core.jobspec import AllowFailure


@dataclass(frozen=True)
class Inclusion:
    """A created job's `when` and what the matching rule (if any) adds."""

    when: str
    allow_failure_from_rule: bool | None = None
    start_in: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    rule_index: int | None = None  # the rule whose `needs` replace the job's, if it has any


def decide(
    job: Any,
    variables: Mapping[str, str],
    context_for: Callable[[Mapping[str, str], bool], Any],
    *,
    ref: str,
    is_tag: bool,
) -> Inclusion | str:
    """The job's Inclusion, or why it is not created (a sentence).

    `context_for(variables, uses_changes)` makes the runner.evaluate.rules.RuleContext (the
    caller reads the local diff only when a rule asks for `changes`). RuleError propagates:
    GitLab fails the pipeline with "Failed to parse rule for <job>: ...".
    """
    from runner.evaluate.rules import evaluate_only_except, evaluate_rules

    job_when = job.when or "on_success"
    if job.rules is None:
        only, except_ = _dump(job.only), _dump(job.except_)
        uses_changes = any("changes" in (part or {}) for part in (only, except_))
        context = context_for(variables, uses_changes)
        source = variables.get("CI_PIPELINE_SOURCE", "push")
        created = evaluate_only_except(
            only, except_, context, ref=ref, is_tag=is_tag, pipeline_source=source
        )
        if not created:
            return "only/except: the job's conditions do not hold"
        start_in = job.start_in if job_when == "delayed" else None
        return Inclusion(job_when, start_in=start_in)
    rules = [rule.model_dump(by_alias=True, exclude_none=True) for rule in job.rules]
    context = context_for(variables, any("changes" in rule for rule in rules))
    result = evaluate_rules(rules, context, job_when=job_when)
    if result is None:
        return _why_not(rules, context)
    index = _matching_rule(rules, context) if result.needs is not None else None
    start_in = result.start_in or (job.start_in if result.when == "delayed" else None)
    return Inclusion(result.when, result.allow_failure, start_in, dict(result.variables), index)


def allow_failure(job: Any, inclusion: Inclusion) -> AllowFailure:
    """GitLab: a rule's `allow_failure` wins (and drops exit codes); then the job's own;
    then the default, true only for a job whose own `when:` is manual (not a rule's)."""
    if inclusion.allow_failure_from_rule is not None:
        return AllowFailure(allowed=inclusion.allow_failure_from_rule)
    if job.allow_failure is not None:
        return AllowFailure(job.allow_failure.allowed, tuple(job.allow_failure.exit_codes))
    return AllowFailure(allowed=job.when == "manual" and inclusion.when == "manual")


def _why_not(rules: list[dict[str, Any]], context: Any) -> str:
    index = _matching_rule(rules, context)
    if index is None:
        return "rules: no rule matched"
    rule = rules[index]
    described = f" (if: {rule['if']})" if "if" in rule else ""
    return f"rules: rule {index + 1}{described} says when: never"


def _matching_rule(rules: list[dict[str, Any]], context: Any) -> int | None:
    """The index of the first rule whose clauses hold, whatever its `when`."""
    from runner.evaluate.rules import evaluate_rules

    for index, rule in enumerate(rules):
        probe = {key: value for key, value in rule.items() if key in ("if", "changes", "exists")}
        if evaluate_rules([probe], context) is not None:
            return index
    return None


def _dump(model: Any) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(by_alias=True, exclude_none=True)
