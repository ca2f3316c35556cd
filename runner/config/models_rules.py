"""Models of the keywords that decide whether and after what a job runs.

`rules`, `only`/`except`, `needs`, `workflow` and the matrix shape shared by `parallel:matrix`
and `needs:parallel:matrix`. Expressions (`rules:if`) are kept as text: their syntax is checked
by runner.evaluate, which evaluates them.
"""

from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from runner.config.models_base import (
    Deferred,
    Model,
    deep_flatten,
    entry_error,
    gitlab_error,
    is_number,
    is_str,
    matches,
    one_of,
    one_of_attribute,
    require_mapping,
    scalar_text,
    shape_only,
    string_list,
    text,
)

JOB_RULE_WHEN = ("on_success", "on_failure", "always", "never", "manual", "delayed")
WORKFLOW_RULE_WHEN = ("always", "never")
MATRIX_MAX = 200


def _strings(value: Any) -> list[str]:
    return string_list(value, allow_string=False)


def _scalar_map(value: Any) -> dict[str, str]:
    """`rules:variables`: names to scalar values, kept as GitLab turns them into text."""
    mapping = require_mapping(value, "config should be a hash of key value pairs")
    result = {}
    for key, item in mapping.items():
        if not (is_str(item) or is_number(item) or isinstance(item, bool)):
            raise gitlab_error(f"config variable {key} should be a string, a number or a boolean")
        result[scalar_text(key)] = scalar_text(item)
    return result


def matrix_entries(value: Any) -> list[dict[str, list[str]]]:
    """`matrix:` as a list of {NAME: [values]}; a lone value stands for a one-item list."""
    if not isinstance(value, list):
        raise gitlab_error("config should be an array of hashes")
    if len(value) > MATRIX_MAX:
        raise gitlab_error(f"config has too many entries (maximum {MATRIX_MAX})")
    entries = []
    for entry in value:
        if not isinstance(entry, dict):
            raise gitlab_error("config should be an array of hashes")
        normalised: dict[str, list[str]] = {}
        for name, values in entry.items():
            if is_str(values) or is_number(values):
                normalised[scalar_text(name)] = [scalar_text(values)]
            elif isinstance(values, list):
                normalised[scalar_text(name)] = [scalar_text(item) for item in values]
            else:
                raise gitlab_error(f"config variable {name} should be a string or an array")
        entries.append(normalised)
    return entries


Matrix = Annotated[list[dict[str, list[str]]], BeforeValidator(matrix_entries)]


def _paths_or_regexp(value: Any) -> dict:
    """`changes`/`exists` short form: a list means `paths`; a mapping needs exactly one of
    `paths` and `regexp`."""
    if isinstance(value, list):
        return {"paths": value}
    mapping = require_mapping(value, "config should be an array or a hash")
    if ("paths" in mapping) == ("regexp" in mapping):
        raise gitlab_error("config should contain either paths or regexp")
    return mapping


class ChangesConfig(Model):
    """`rules:changes`: a list of globs, or {paths, compare_to} (or GitLab's newer regexp)."""

    paths: Annotated[list[str], BeforeValidator(_strings)] = []
    compare_to: Annotated[str | None, BeforeValidator(text)] = None
    regexp: Annotated[str | None, BeforeValidator(text)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return _paths_or_regexp(value)


class ExistsConfig(Model):
    """`rules:exists`: a list of globs, or {paths, project, ref} (or regexp)."""

    paths: Annotated[list[str], BeforeValidator(_strings)] = []
    project: Annotated[str | None, BeforeValidator(text)] = None
    ref: Annotated[str | None, BeforeValidator(text)] = None
    regexp: Annotated[str | None, BeforeValidator(text)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        mapping = _paths_or_regexp(value)
        if "ref" in mapping and "project" not in mapping:
            raise gitlab_error("config missing required keys: project")
        return mapping


class NeedConfig(Model):
    """One edge of `needs:`; `parallel_matrix` limits it to some instances of a matrix job."""

    job: Annotated[str, BeforeValidator(text)]
    artifacts: bool = True
    optional: bool = False
    pipeline: Annotated[str | None, BeforeValidator(text)] = None
    project: Annotated[str | None, BeforeValidator(text)] = None
    ref: Annotated[str | None, BeforeValidator(text)] = None
    parallel_matrix: Matrix | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_str(value):
            return {"job": value}
        mapping = dict(require_mapping(value, "config should be a string or a hash"))
        if "parallel_matrix" in mapping:
            raise gitlab_error("config contains unknown keys: parallel_matrix")
        if "project" in mapping:
            missing = [key for key in ("job", "ref") if key not in mapping]
            if missing:
                raise gitlab_error(f"config missing required keys: {', '.join(missing)}")
            if "optional" in mapping:
                raise gitlab_error("config contains unknown keys: optional")
        if "parallel" in mapping:
            parallel = mapping.pop("parallel")
            if not isinstance(parallel, dict) or set(parallel) != {"matrix"}:
                raise gitlab_error("config parallel should be a hash with only a matrix key")
            mapping["parallel_matrix"] = parallel["matrix"]
        return mapping


class RuleNeedConfig(NeedConfig):
    """`rules:needs` items: only a job of this pipeline, with artifacts and optional."""

    @model_validator(mode="before")
    @classmethod
    def _rule_form(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = [k for k in value if k not in ("job", "artifacts", "optional")]
            if unknown:
                raise gitlab_error(f"config contains unknown keys: {', '.join(map(str, unknown))}")
            if not is_str(value.get("job")) or not value.get("job"):
                raise gitlab_error("config job should be a non-empty string")
        return value


def _needs_list(value: Any, info: ValidationInfo) -> list:
    """`needs:` items; arrays of names (an expanded `!reference`) are flattened.

    GitLab's `Needs` entry goes further than its schema: it flattens arrays at any depth
    (lists nested through anchors) and drops nulls."""
    if not isinstance(value, list):
        raise gitlab_error("config should be an array")
    if not shape_only(info):
        return [item for item in deep_flatten(value) if item is not None]
    flat: list = []
    for item in value:
        if isinstance(item, list) and all(is_str(x) for x in item):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


Needs = Annotated[list[NeedConfig], BeforeValidator(_needs_list)]
RuleNeeds = Annotated[list[RuleNeedConfig], BeforeValidator(_needs_list)]


class AutoCancelConfig(Model):
    on_job_failure: Annotated[str | None, BeforeValidator(lambda v: one_of(v, ("none", "all")))] = (
        None
    )
    on_new_commit: Annotated[
        str | None, BeforeValidator(lambda v: one_of(v, ("conservative", "interruptible", "none")))
    ] = None


class _RuleBase(Model):
    if_: Annotated[str | None, BeforeValidator(text), Field(alias="if")] = None
    changes: Annotated[ChangesConfig | None, Deferred(ChangesConfig)] = None
    exists: Annotated[ExistsConfig | None, Deferred(ExistsConfig)] = None

    @model_validator(mode="before")
    @classmethod
    def _hash(cls, value: Any) -> Any:
        return require_mapping(value)


def _rule_when(value: Any) -> str:
    return one_of_attribute(value, JOB_RULE_WHEN, f"unknown value: {value}")


class RuleConfig(_RuleBase):
    """One item of a job's `rules:`."""

    when: Annotated[str | None, BeforeValidator(_rule_when)] = None
    allow_failure: bool | None = None
    variables: Annotated[dict[str, str] | None, BeforeValidator(_scalar_map)] = None
    needs: Annotated[RuleNeeds | None, Deferred(RuleNeeds)] = None
    start_in: Annotated[str | None, BeforeValidator(text)] = None
    interruptible: bool | None = None

    @model_validator(mode="after")
    def _delay(self) -> Self:
        if self.when == "delayed" and not self.start_in:
            raise gitlab_error("config start_in should be a duration when `when` is delayed")
        if self.start_in is not None and self.when != "delayed":
            raise gitlab_error("config contains unknown keys: start_in")
        return self


class WorkflowRuleConfig(_RuleBase):
    when: Annotated[
        str | None,
        BeforeValidator(lambda v: one_of_attribute(v, WORKFLOW_RULE_WHEN, f"unknown value: {v}")),
    ] = None
    variables: Annotated[dict[str, str] | None, BeforeValidator(_scalar_map)] = None
    auto_cancel: Annotated[AutoCancelConfig | None, Deferred(AutoCancelConfig)] = None


class IncludeRuleConfig(_RuleBase):
    NULLABLE = frozenset({"when"})
    when: Annotated[
        str | None,
        BeforeValidator(
            lambda v: (
                None
                if v is None
                else one_of_attribute(v, WORKFLOW_RULE_WHEN, f"unknown value: {v}")
            )
        ),
    ] = None


def _rules_list(value: Any, info: ValidationInfo) -> list:
    """A `rules:` array. Plain strings or arrays of strings in it are unresolved `!reference`s,
    which GitLab's schema lets through; only the shape check accepts (and skips) them."""
    if not isinstance(value, list):
        raise gitlab_error("config should be an array of hashes")
    if shape_only(info):
        return [item for item in value if not (is_str(item) or isinstance(item, list))]
    return deep_flatten(value)  # GitLab's `Rules` entry splices nested arrays in


def _present_rules_list(value: Any, info: ValidationInfo) -> list:
    """Job and workflow `rules:`: GitLab's `Rules` entry also refuses an empty array."""
    rules = _rules_list(value, info)
    if not rules and not shape_only(info):
        raise entry_error("config can't be blank")
    return rules


Rules = Annotated[list[RuleConfig], BeforeValidator(_present_rules_list)]
WorkflowRules = Annotated[list[WorkflowRuleConfig], BeforeValidator(_present_rules_list)]
IncludeRules = Annotated[list[IncludeRuleConfig], BeforeValidator(_rules_list)]


class OnlyExceptConfig(Model):
    """`only:`/`except:` (deprecated by GitLab, still honoured): refs, variables, changes."""

    refs: Annotated[list[str] | None, BeforeValidator(_strings)] = None
    variables: Annotated[list[str] | None, BeforeValidator(_strings)] = None
    changes: Annotated[list[str] | None, BeforeValidator(_strings)] = None
    kubernetes: Annotated[str | None, BeforeValidator(lambda v: one_of(v, ("active",)))] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"refs": value}
        return require_mapping(value, "config should be an array of conditions or a hash")


class WorkflowConfig(Model):
    name: Annotated[
        str | None,
        BeforeValidator(
            lambda v: matches(v, r"^.{1,255}$", "config should be 1 to 255 characters")
        ),
    ] = None
    rules: Annotated[WorkflowRules | None, Deferred(WorkflowRules)] = None
    auto_cancel: Annotated[AutoCancelConfig | None, Deferred(AutoCancelConfig)] = None
