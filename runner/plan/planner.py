"""Planning one pipeline: stages, parallel expansion, needs, workflow, rules, JobSpecs.

The `Planner` holds what every step shares (the validated configuration, the git facts, the
command-line variables) and offers the steps in the order `runner.pipeline` calls them:

1. `check_expressions()` and `check_references()`: `rules:if` syntax, needs/dependencies/
   cycles over every configured job, before rules (GitLab's linter does the same, so a broken
   reference is an error on every branch);
2. `decide_workflow()`: `workflow:rules` on predefined + global + command-line variables;
3. `plan(workflow)`: each job's variables, its rules or only/except (inclusion.py), then
   needs pruned to the jobs that exist, then one `JobSpec` per job (build_jobspec.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from runner.core.errors import Location, Problem
from runner.core.jobspec import JobSpec, Variable
from runner.plan import job_variables as jv
from runner.plan.build_jobspec import Decision, build_jobspec
from runner.plan.dag import cycle_message, find_cycle
from runner.plan.excluded import ExcludedJob
from runner.plan.inclusion import allow_failure, decide
from runner.plan.matrix import Instance, expand_job, interpolate_matrix, uses_matrix_expressions
from runner.plan.needs import (
    JobRefs,
    NameTable,
    NeedRef,
    check_references,
    concrete_dependencies,
    concrete_needs,
    link_created_jobs,
)
from runner.plan.stages import DEFAULT_JOB_STAGE

BUILDS_DIR = "/builds"
MAX_NEEDS = 50  # GitLab's default ci_needs_size_limit


@dataclass(frozen=True)
class PlannedInstance:
    """One job to be created, before rules: its configured job and its parallel identity."""

    config_name: str
    instance: Instance
    stage: str
    stage_index: int
    order: int  # position in the file, to keep file order within a stage


class Planner:
    def __init__(
        self,
        config: Any,
        raw_jobs: Mapping[str, Any],
        opts: Any,
        facts: Any,
        raw_globals: Mapping[str, Any] | None = None,
    ):
        from runner.config.validate import ignored_keys

        self.config = config
        self.raw_jobs = raw_jobs
        self.raw_globals = raw_globals or {}
        self.opts = opts
        self.facts = facts
        self.stages: tuple[str, ...] = tuple(config.all_stages())
        self.stage_index = {name: index for index, name in enumerate(self.stages)}
        self.instances: list[PlannedInstance] = []
        self.table = NameTable()
        ignored: list[tuple[str, str]] = []
        for order, (name, job) in enumerate(config.jobs.items()):
            stage = job.stage or DEFAULT_JOB_STAGE
            index = self.stage_index[stage]
            parallel = job.parallel
            created = expand_job(
                name,
                parallel.count if parallel else None,
                parallel.matrix if parallel else None,
            )
            self.table.add(name, [each.name for each in created], index)
            self.instances += [PlannedInstance(name, each, stage, index, order) for each in created]
            ignored += [(name, key) for key in ignored_keys(job)]
            ignored += [
                (name, "needs:pipeline" if need.pipeline else "needs:project")
                for need in job.needs or ()
                if _remote(need)
            ]
        self.ignored = tuple(ignored)
        self._predefined: list[Variable] | None = None
        self._changed: Any = None
        self._settings: Any = None

    # --- step 1: references -------------------------------------------------------------

    def check_expressions(self) -> list[Problem]:
        """`rules:if` must parse, in GitLab's words (`jobs:x:rules:rule if invalid ...`)."""
        from runner.config.source import locate
        from runner.evaluate.expression import check_syntax

        problems: list[Problem] = []
        workflow = self.config.workflow
        for index, rule in enumerate(workflow.rules or () if workflow else ()):
            if rule.if_ is not None and check_syntax(rule.if_):
                where = locate(self.raw_globals, ["workflow", "rules", index, "if"])
                message = "workflow:rules:rule if invalid expression syntax"
                problems.append(Problem(message, where, None, "workflow"))
        for name, job in self.config.jobs.items():
            for index, rule in enumerate(job.rules or ()):
                if rule.if_ is not None and check_syntax(rule.if_):
                    where = self._location(name, "rules", index, "if")
                    message = f"jobs:{name}:rules:rule if invalid expression syntax"
                    problems.append(Problem(message, where, name, "rules"))
        return problems

    def check_references(self) -> list[Problem]:
        interpolation: list[Problem] = []
        refs = []
        for name, job in self.config.jobs.items():
            if not _needs_interpolate(job.needs):
                refs.append(self._refs(name, job))
                continue
            # `$[[ matrix.X ]]` needs differ per instance: check each one's (once per message)
            for planned in self.instances:
                if planned.config_name == name:
                    refs.append(self._refs(name, job, planned.instance.matrix, interpolation))
        if interpolation:  # GitLab stops at these (the needs they would name are meaningless)
            return _unique(interpolation)
        problems = _unique(check_references(refs, self.table))
        if problems:
            return problems
        edges: dict[str, list[str]] = {}
        for planned in self.instances:
            job = self.config.jobs[planned.config_name]
            refs = self._need_refs(
                planned.config_name, job.needs or (), matrix=planned.instance.matrix, where=False
            )
            edges[planned.instance.name] = [need.job for need in concrete_needs(refs, self.table)]
        cycle = find_cycle(edges)
        if cycle:
            where = self._location(_base_of(self.instances, cycle[0]), "needs")
            return [Problem(cycle_message(cycle), where, cycle[0], "needs")]
        return []

    def _refs(
        self,
        name: str,
        job: Any,
        matrix: Mapping[str, str] | None = None,
        problems: list[Problem] | None = None,
    ) -> JobRefs:
        rule_needs = tuple(
            tuple(self._need_refs(name, rule.needs, ("rules", index, "needs")))
            for index, rule in enumerate(job.rules or ())
            if rule.needs is not None
        )
        needs = None
        if job.needs is not None:
            needs = tuple(self._need_refs(name, job.needs, matrix=matrix, problems=problems))
        return JobRefs(
            name=name,
            stage_index=self.stage_index[job.stage or DEFAULT_JOB_STAGE],
            needs=needs,
            dependencies=tuple(job.dependencies) if job.dependencies is not None else None,
            location=self._location(name, None),
            dependency_locations=tuple(
                self._location(name, "dependencies", index)
                for index in range(len(job.dependencies or ()))
            ),
            rule_needs=rule_needs,
        )

    def _need_refs(
        self,
        name: str,
        needs: Any,
        path: tuple[Any, ...] = ("needs",),
        *,
        matrix: Mapping[str, str] | None = None,
        problems: list[Problem] | None = None,
        where: bool = True,
    ) -> list[NeedRef]:
        """NeedRefs of written needs; with `matrix`, `$[[ matrix.X ]]` is replaced first.

        `where=False` skips locating each need in the file (only error reports need it).
        """
        refs = []
        for index, need in enumerate(needs):
            if _remote(need):
                continue  # another project's or pipeline's job: nothing to wait for locally
            location = self._location(name, *path, index) if where else None
            missing: list[str] = []

            def fill(text: str, missing: list[str] = missing) -> str:
                if matrix is None:
                    return text
                filled, lacking = interpolate_matrix(text, matrix)
                missing.extend(lacking)
                return filled

            selector = None
            if need.parallel_matrix:
                selector = tuple(
                    {key: [fill(value) for value in values] for key, values in entry.items()}
                    for entry in need.parallel_matrix
                )
            refs.append(NeedRef(fill(need.job), need.artifacts, need.optional, selector, location))
            for variable in missing if problems is not None else ():
                message = f"{name} job: '{variable}' does not exist in matrix configuration"
                problems.append(Problem(message, location, name, "needs"))
        return refs

    def _location(self, job: str | None, *path: Any) -> Location | None:
        from runner.config.source import locate

        if job is None or job not in self.raw_jobs:
            return None
        return locate(self.raw_jobs[job], [part for part in path if part is not None])

    # --- step 2: workflow ----------------------------------------------------------------

    def predefined(self, pipeline_name: str | None = None) -> list[Variable]:
        from runner.evaluate.predefined import pipeline_variables

        return pipeline_variables(
            self.facts,
            pipeline_source=jv.pipeline_source(self.opts.variables),
            pipeline_name=pipeline_name,
            config_path=self._config_path(),
        )

    def decide_workflow(self) -> Any:
        from runner.evaluate.rules import evaluate_workflow

        variables = jv.merged(
            self.predefined(),
            jv.to_variables(self.config.variables),
            self.settings_variables(None),
            jv.as_variables(self.opts.variables),
        )
        workflow = self.config.workflow
        plain = workflow.model_dump(by_alias=True, exclude_none=True) if workflow else None
        uses_changes = bool(plain) and any("changes" in r for r in plain.get("rules") or ())
        return evaluate_workflow(plain, self._context(jv.as_mapping(variables), uses_changes))

    def settings_variables(self, environment: str | None) -> list[Variable]:
        """The CI/CD settings variables (files, server) of a job in `environment`: GitLab ranks
        them above every YAML variable and below pipeline variables (`--variable`)."""
        if self.opts.settings is None:
            return []
        if self._settings is None:
            self._settings = self.opts.settings.variables(self.facts)
        return self._settings.for_environment(environment)

    def _context(self, variables: Mapping[str, str], uses_changes: bool) -> Any:
        from runner.evaluate.rules import RuleContext

        changed = None
        if uses_changes:
            if self._changed is None:
                from runner.evaluate.changes import local_changed_files

                self._changed = (local_changed_files(self.opts.directory),)
            changed = self._changed[0]
        return RuleContext(variables, self.opts.directory, changed)

    # --- step 3: jobs --------------------------------------------------------------------

    def plan(self, workflow: Any) -> tuple[list[JobSpec], list[Any], list[Problem]]:

        # the pipeline's predefined variables, the same for every job: layered once
        predefined = jv.layered(self.predefined(workflow.name))
        # workflow:rules variables override the global ones before jobs inherit them
        globals_ = {**self.config.variables, **workflow.variables}
        cli = jv.as_variables(self.opts.variables)
        decided: list[tuple[PlannedInstance, Decision]] = []
        excluded: list[ExcludedJob] = []
        problems: list[Problem] = []
        for planned in sorted(self.instances, key=lambda p: (p.stage_index, p.order)):
            job = self.config.jobs[planned.config_name]
            outcome = self._decide(planned, job, predefined, globals_, cli)
            if isinstance(outcome, str):
                excluded.append(ExcludedJob(planned.instance.name, planned.stage, outcome))
            elif isinstance(outcome, Problem):
                problems.append(outcome)
            else:
                decided.append((planned, outcome))
        created = {decision.name for _, decision in decided}
        specs: list[JobSpec] = []
        for planned, decision in decided:
            needs, dependencies, missing = link_created_jobs(
                decision.name, decision.needs, decision.dependencies, created
            )
            where = self._location(planned.config_name, "needs") if missing else None
            problems += [replace(problem, location=where) for problem in missing]
            if decision.needs is not None and len(decision.needs) > MAX_NEEDS:
                message = (
                    f"{decision.name}: one job can only need {MAX_NEEDS} others, but you have "
                    f"listed {len(decision.needs)}. "
                    "See needs keyword documentation for more details"
                )
                where = self._location(planned.config_name, "needs")
                problems.append(Problem(message, where, decision.name, "needs"))
            cycle = _variable_cycle(decision.variables)
            if cycle:
                where = self._location(planned.config_name, "variables")
                problems.append(Problem(f"{decision.name}: {cycle}", where, decision.name))
            final = replace(decision, needs=needs, dependencies=dependencies)
            specs.append(build_jobspec(self.config.jobs[planned.config_name], final))
        return specs, excluded, problems

    def _decide(
        self,
        planned: PlannedInstance,
        job: Any,
        predefined: dict[str, Variable],
        globals_: Mapping[str, Any],
        cli: list[Variable],
    ) -> Decision | str | Problem:
        """The job's Decision, or why it is not created (str), or a rule that cannot run."""
        from runner.evaluate.predefined import job_variables
        from runner.evaluate.rules import RuleError

        instance = planned.instance
        inherit = job.inherit.variables if job.inherit is not None else True
        own = [*jv.to_variables(job.variables), *jv.as_variables(instance.matrix)]
        job_predefined = job_variables(
            self.facts,
            job_name=instance.name,
            stage=planned.stage,
            node_index=instance.index,
            node_total=instance.total,
            project_dir_in_job=f"{BUILDS_DIR}/{self.facts.project_path}",
            builds_dir=BUILDS_DIR,
            manual=False,
            image=job.image.name if job.image is not None else None,
        )
        yaml_layers = (jv.to_variables(jv.inherited_globals(globals_, inherit)), own)
        base = jv.layered(job_predefined, *yaml_layers, base=predefined)
        environment = None
        if job.environment is not None:
            # deployment variables sit below the YAML ones; the name may use job variables
            seen = jv.as_mapping(jv.layered(self.settings_variables(None), cli, base=base).values())
            deployment = jv.deployment_variables(job.environment, seen)
            environment = deployment[0].value
            base = jv.layered(job_predefined, deployment, *yaml_layers, base=predefined)
        settings = self.settings_variables(environment)
        # rules:if sees the job's own variables too (GitLab >= 15.x), below the command line
        context_vars = jv.as_mapping(jv.layered(settings, cli, base=base).values())
        try:
            inclusion = decide(
                job,
                context_vars,
                self._context,
                ref=self.facts.ref_name,
                is_tag=self.facts.is_tag,
            )
        except RuleError as exc:
            message = f"Failed to parse rule for {instance.name}: {exc}"
            return Problem(message, self._location(planned.config_name, "rules"), instance.name)
        if isinstance(inclusion, str):
            return inclusion
        when, rule_vars, needs = inclusion.when, inclusion.variables, job.needs
        if inclusion.rule_index is not None:
            needs = job.rules[inclusion.rule_index].needs
        rules_layer = [Variable(key, value) for key, value in rule_vars.items()]
        variables = tuple(jv.layered(rules_layer, settings, cli, base=base).values())
        need_refs = None
        if needs is not None:
            # rules:needs are taken as written; the job's own needs may use $[[ matrix.X ]]
            matrix = instance.matrix if needs is job.needs else None
            need_refs = self._need_refs(planned.config_name, needs, matrix=matrix, where=False)
        return Decision(
            name=instance.name,
            stage=planned.stage,
            stage_index=planned.stage_index,
            when=when,
            allow_failure=allow_failure(job, inclusion),
            start_in=_seconds(inclusion.start_in) if when == "delayed" else None,
            variables=variables,
            needs=None if need_refs is None else tuple(concrete_needs(need_refs, self.table)),
            dependencies=(
                None
                if job.dependencies is None
                else tuple(concrete_dependencies(job.dependencies, self.table))
            ),
            node_index=instance.index,
            node_total=instance.total,
            ignored_keys=tuple(key for name, key in self.ignored if name == planned.config_name),
            environment=environment,
            yaml_variables=tuple(jv.layered(*yaml_layers, rules_layer).values()),
        )

    def _config_path(self) -> str:
        try:
            return str(self.opts.file.relative_to(self.opts.directory))
        except ValueError:
            return str(self.opts.file)


def _needs_interpolate(needs: Any) -> bool:
    texts: list[str] = []
    for need in needs or ():
        texts.append(need.job)
        for entry in need.parallel_matrix or ():
            texts += [value for values in entry.values() for value in values]
    return uses_matrix_expressions(texts)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _variable_cycle(variables: tuple[Variable, ...]) -> str | None:
    """GitLab's "circular variable reference detected: ..." for one job's variables, or None.

    Only values that refer to something can be part of a cycle, so only those are looked at
    (most of a job's ~80 variables are predefined plain values).
    """
    from runner.evaluate.variables import circular_references

    referring = [v for v in variables if not v.raw and ("$" in v.value or "%" in v.value)]
    return circular_references(referring) if len(referring) > 1 else None


def _remote(need: Any) -> bool:
    return bool(getattr(need, "project", None) or getattr(need, "pipeline", None))


def _seconds(duration: str | None) -> float | None:
    from runner.config.models_base import parse_duration

    return parse_duration(duration) if duration else None


def _base_of(instances: list[PlannedInstance], name: str) -> str | None:
    for planned in instances:
        if planned.instance.name == name:
            return planned.config_name
    return None


__all__ = ["PlannedInstance", "Planner"]
