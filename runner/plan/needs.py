"""`needs` and `dependencies`: from names as written to edges between created jobs.

Two passes, as GitLab makes them:

1. `check_references` runs on every configured job before any rule is evaluated (GitLab's
   linter): a need or dependency must name a job of the file, in the same or an earlier stage,
   and a need may be listed once. An `optional` need of a job that is not in the file at all is
   dropped without a word.
2. `link_created_jobs` runs once rules decided which jobs exist: a need of a job that rules or
   `only`/`except` left out is an error unless it is `optional`, in which case it is dropped;
   a dependency on a job left out is dropped (that job simply has no artifacts to give).

Names are resolved against parallel expansion first: a need or dependency on `test` means every
job `test` became (`test 1/3`, ...); a `parallel:matrix` selector picks the named combinations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.core.errors import Location, Problem
from runner.core.jobspec import Need
from runner.plan.matrix import selected_names

NOT_PRIOR = "is not defined in current or prior stages"


@dataclass(frozen=True)
class NeedRef:
    """A need as written: `job` is a configured name, `matrix` an optional combination selector."""

    job: str
    artifacts: bool = True
    optional: bool = False
    matrix: tuple[Mapping[str, Any], ...] | None = None
    location: Location | None = None


@dataclass(frozen=True)
class JobRefs:
    """What pass 1 needs to know of one configured job."""

    name: str
    stage_index: int
    needs: tuple[NeedRef, ...] | None  # None: no `needs:` keyword (stage ordering)
    dependencies: tuple[str, ...] | None
    location: Location | None = None
    dependency_locations: tuple[Location | None, ...] = ()  # one per dependency
    # `rules:needs` alternatives, checked like `needs:` itself
    rule_needs: tuple[tuple[NeedRef, ...], ...] = field(default_factory=tuple)


class NameTable:
    """Configured job names -> the created names they expand to, and each name's stage."""

    def __init__(self) -> None:
        self.expansions: dict[str, list[str]] = {}
        self.stage_of: dict[str, int] = {}

    def add(self, base: str, names: Sequence[str], stage_index: int) -> None:
        self.expansions[base] = list(names)
        for name in names:
            self.stage_of[name] = stage_index
        self.stage_of.setdefault(base, stage_index)

    def resolve(self, name: str) -> list[str] | None:
        """The created names `name` stands for; a literal instance name stands for itself."""
        if name in self.expansions:
            return self.expansions[name]
        if name in self.stage_of:
            return [name]
        return None


def expand_need(ref: NeedRef, table: NameTable) -> tuple[list[Need], list[str]]:
    """Concrete needs for one written need, and the names it asks for that do not exist."""
    if ref.matrix:
        wanted = selected_names(ref.job, ref.matrix)
        existing = set(table.expansions.get(ref.job, ()))
        found = [Need(name, ref.artifacts, ref.optional) for name in wanted if name in existing]
        return found, [name for name in wanted if name not in existing]
    names = table.resolve(ref.job)
    if names is None:
        return [], [ref.job]
    return [Need(name, ref.artifacts, ref.optional) for name in names], []


def check_references(jobs: Sequence[JobRefs], table: NameTable) -> list[Problem]:
    """Pass 1: every problem with needs and dependencies that rules cannot change."""
    problems: list[Problem] = []
    for job in jobs:
        for needs in ((job.needs or ()), *job.rule_needs):
            problems.extend(_check_needs(job, needs, table))
        for index, dependency in enumerate(job.dependencies or ()):
            message = _reference_error(job, dependency, "dependency", table)
            if message:
                where = (job.dependency_locations or (None,) * (index + 1))[index]
                problems.append(Problem(message, where, job.name, "dependencies"))
    return problems


def _check_needs(job: JobRefs, needs: Sequence[NeedRef], table: NameTable) -> list[Problem]:
    problems: list[Problem] = []
    seen: list[str] = []
    duplicated: list[str] = []
    for ref in needs:
        found, missing = expand_need(ref, table)
        for name in missing if not ref.optional else ():
            problems.append(
                Problem(f"{job.name} job: undefined need: {name}", ref.location, job.name, "needs")
            )
        for need in found:
            if table.stage_of[need.job] > job.stage_index:
                message = f"{job.name} job: need {need.job} {NOT_PRIOR}"
                problems.append(Problem(message, ref.location, job.name, "needs"))
            if need.job in seen and need.job not in duplicated:
                duplicated.append(need.job)
            seen.append(need.job)
    if duplicated:
        message = f"{job.name} has the following needs duplicated: {', '.join(duplicated)}."
        problems.append(Problem(message, job.location, job.name, "needs"))
    return problems


def _reference_error(job: JobRefs, name: str, kind: str, table: NameTable) -> str | None:
    names = table.resolve(name)
    if names is None:
        return f"{job.name} job: undefined {kind}: {name}"
    if any(table.stage_of[each] > job.stage_index for each in names):
        return f"{job.name} job: {kind} {name} {NOT_PRIOR}"
    return None


def concrete_needs(needs: Sequence[NeedRef], table: NameTable) -> list[Need]:
    """Every need of a job as created names (pass 1 has already reported what is missing)."""
    result: list[Need] = []
    for ref in needs:
        result.extend(expand_need(ref, table)[0])
    return result


def concrete_dependencies(dependencies: Sequence[str], table: NameTable) -> list[str]:
    result: list[str] = []
    for name in dependencies:
        result.extend(table.resolve(name) or ())
    return result


def missing_need_message(job: str, need: str) -> str:
    """GitLab's sentence for a need whose job rules or only/except left out of the pipeline."""
    return (
        f"'{job}' job needs '{need}' job, but '{need}' does not exist in the pipeline. "
        "This might be because of the only, except, or rules keywords. "
        "To need a job that sometimes does not exist in the pipeline, use needs:optional."
    )


def link_created_jobs(
    job: str,
    needs: Sequence[Need] | None,
    dependencies: Sequence[str] | None,
    created: set[str],
    location: Location | None = None,
) -> tuple[tuple[Need, ...] | None, tuple[str, ...] | None, list[Problem]]:
    """Pass 2 for one created job: keep edges to created jobs, report required ones missing."""
    problems: list[Problem] = []
    kept_needs: tuple[Need, ...] | None = None
    if needs is not None:
        kept: list[Need] = []
        for need in needs:
            if need.job in created:
                kept.append(need)
            elif not need.optional:
                message = missing_need_message(job, need.job)
                problems.append(Problem(message, location, job, "needs"))
        kept_needs = tuple(kept)
    kept_deps = None
    if dependencies is not None:
        kept_deps = tuple(name for name in dependencies if name in created)
    return kept_needs, kept_deps, problems
