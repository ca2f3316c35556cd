"""Models of what a job runs and how: image, services, variables, retry, parallel, ...

Short forms become one long form here (`image: alpine` -> ImageConfig(name="alpine"),
`retry: 2` -> RetryConfig(max=2), `alias: "a,b"` -> ["a", "b"], ...), so consumers never look
at the YAML shape again.
"""

import math
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from runner.config.models_base import (
    Deferred,
    Model,
    flatten_script,
    gitlab_error,
    gitlab_error_at,
    is_int,
    is_number,
    is_str,
    nonempty_text,
    one_of,
    one_of_attribute,
    require_mapping,
    scalar_text,
    shape_only,
    string_list,
    text,
)
from runner.config.models_rules import Matrix

PULL_POLICIES = ("always", "never", "if-not-present")
JOB_WHEN = ("on_success", "on_failure", "always", "manual", "delayed", "never")
RETRY_WHEN = (
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "stuck_pending_with_matching_runners",
    "stuck_pending_no_matching_runners",
    "no_updates_running",
    "no_updates_canceling",
    "runner_system_failure",
    "runner_configuration_error",
    "runner_external_dependency_failure",
    "runner_interrupted",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "server_timeout_running",
    "server_timeout_canceling",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
)
INHERITABLE_DEFAULTS = (
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
)


def _user(value: Any) -> str:
    if not is_str(value) or not 1 <= len(value) <= 255:
        raise gitlab_error("config should be a string of 1 to 255 characters")
    return value


def _pull_policy(value: Any) -> list[str]:
    policies = string_list(value, min_items=1, unique=True)
    for policy in policies:
        one_of(policy, PULL_POLICIES)
    return policies


def _entrypoint(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise gitlab_error("config should be a non-empty array of strings")
    return [item if is_str(item) else scalar_text(item) for item in value]


def _service_entrypoint(value: Any) -> list[str]:
    return string_list(
        value, allow_string=False, min_items=1, what="config should be a non-empty array of strings"
    )


class DockerOptions(Model):
    platform: Annotated[str | None, BeforeValidator(nonempty_text)] = None
    user: Annotated[str | None, BeforeValidator(_user)] = None


def _kubernetes_user(value: Any) -> str:
    if is_int(value):
        return str(value)
    return _user(value)


class KubernetesOptions(Model):
    user: Annotated[str | None, BeforeValidator(_kubernetes_user)] = None


class ImageConfig(Model):
    name: Annotated[str, BeforeValidator(nonempty_text)]
    entrypoint: Annotated[list[str] | None, BeforeValidator(_entrypoint)] = None
    pull_policy: Annotated[list[str], BeforeValidator(_pull_policy)] = []
    docker: Annotated[DockerOptions | None, Deferred(DockerOptions)] = None
    kubernetes: Annotated[KubernetesOptions | None, Deferred(KubernetesOptions)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_str(value):
            return {"name": value}
        return require_mapping(value, "config should be a hash or a string")


def _alias(value: Any) -> list[str]:
    """GitLab lets one `alias:` name several hosts, separated by commas."""
    if not is_str(value) or not value:
        raise gitlab_error("config should be a non-empty string")
    return [part.strip() for part in value.split(",") if part.strip()]


def _command(value: Any) -> list[str]:
    lines = flatten_script(value, allow_empty=False)
    if not lines:
        raise gitlab_error("config can't be blank")
    return lines


def variable_entry(value: Any, *, allowed: tuple[str, ...], strict: bool) -> dict[str, Any]:
    """One variable's value: a scalar, or a hash of `allowed` keys (value, expand, ...).

    Any scalar is a value (GitLab's `ScalarValidator`: strings, integers, decimals and
    booleans), exported as Ruby's `to_s` writes it (`PY: 3.10` is "3.1"). GitLab itself
    (`strict`) also takes a missing value as empty, which the schema refuses."""
    if is_str(value) or is_number(value) or isinstance(value, bool):
        return {"value": scalar_text(value)}
    if value is None and strict:
        return {}  # GitLab's processor takes `NAME:` with no value as an empty variable
    if not isinstance(value, dict):
        raise gitlab_error("variable definition must be either a string or a hash")
    unknown = [str(k) for k in value if k not in allowed]
    if unknown:
        raise gitlab_error(f"config uses invalid data keys: {', '.join(unknown)}")
    options = value.get("options")
    if strict and isinstance(options, list) and options and value.get("value") not in options:
        raise gitlab_error("config value must be present in options")
    return dict(value)


def _scalar_value(value: Any, info: ValidationInfo) -> str:
    """`value:` of a variable's hash: a string for GitLab's schema; any scalar for GitLab
    itself, as Ruby's `to_s` writes it."""
    if shape_only(info):
        return text(value)
    if is_str(value) or is_number(value) or isinstance(value, bool):
        return scalar_text(value)
    raise gitlab_error("config value must be a scalar")


def _options(value: Any) -> list[str]:
    return string_list(value, allow_string=False, min_items=1, unique=True)


class VariableConfig(Model):
    """A variable as written: `expand: false` is GitLab's raw variable."""

    value: Annotated[str | None, BeforeValidator(_scalar_value)] = None
    description: Annotated[str | None, BeforeValidator(lambda v: text(v))] = None
    expand: bool = True
    options: Annotated[list[str] | None, BeforeValidator(_options)] = None


def _variables(allowed: tuple[str, ...]):
    def check(value: Any, info: ValidationInfo) -> dict[str, dict]:
        mapping = require_mapping(
            value, "config should be a hash of key value pairs, value can be a hash"
        )
        result = {}
        for key, item in mapping.items():
            try:
                entry = variable_entry(item, allowed=allowed, strict=not shape_only(info))
                result[scalar_text(key)] = entry
            except PydanticCustomError as exc:
                raise gitlab_error_at(key, exc.message()) from None
        return result

    return check


JOB_VARIABLE_KEYS = ("value", "expand")
GLOBAL_VARIABLE_KEYS = ("value", "description", "expand", "options")
JobVariables = Annotated[dict[str, VariableConfig], BeforeValidator(_variables(JOB_VARIABLE_KEYS))]
GlobalVariables = Annotated[
    dict[str, VariableConfig], BeforeValidator(_variables(GLOBAL_VARIABLE_KEYS))
]


class ServiceConfig(Model):
    name: Annotated[str, BeforeValidator(nonempty_text)]
    alias: Annotated[list[str], BeforeValidator(_alias)] = []
    entrypoint: Annotated[list[str] | None, BeforeValidator(_service_entrypoint)] = None
    command: Annotated[list[str] | None, BeforeValidator(_command)] = None
    variables: Annotated[JobVariables, Deferred(JobVariables)] = {}
    pull_policy: Annotated[list[str], BeforeValidator(_pull_policy)] = []
    docker: Annotated[DockerOptions | None, Deferred(DockerOptions)] = None
    kubernetes: Annotated[KubernetesOptions | None, Deferred(KubernetesOptions)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_str(value):
            if not value:
                raise gitlab_error("config should be a non-empty string")
            return {"name": value}
        return require_mapping(value, "config should be a hash or a string")


def _services(value: Any) -> list:
    if not isinstance(value, list):
        raise gitlab_error("config should be a array")  # sic, GitLab's words
    return value


Services = Annotated[list[ServiceConfig], BeforeValidator(_services)]


def _retry_max(value: Any) -> int:
    if not is_int(value) or not 0 <= value <= 2:
        raise gitlab_error("config should be an integer from 0 to 2")
    return value


def _exit_codes(value: Any, info: ValidationInfo) -> list[int]:
    """`allow_failure:exit_codes` and `retry:exit_codes`. GitLab's schema wants a non-empty
    list without duplicates; its entries (`array_of_integers_or_integer`) take any list of
    integers, an empty one too (which then allows, or retries, no exit code)."""
    if is_int(value):
        return [value]
    schema = shape_only(info)
    if not isinstance(value, list) or (schema and not value):
        raise gitlab_error("config should be an array of integers or an integer")
    if not all(is_int(code) for code in value):
        raise gitlab_error("config should be an array of integers or an integer")
    if schema and len(set(value)) != len(value):
        raise gitlab_error("config should not contain duplicate exit codes")
    return list(dict.fromkeys(value))


def _retry_when(value: Any) -> list[str]:
    reasons = string_list(value, what="config should be a string or an array of strings")
    for reason in reasons:
        one_of(reason, RETRY_WHEN)
    return reasons


class RetryConfig(Model):
    max: Annotated[int, BeforeValidator(_retry_max)] = 0
    when: Annotated[list[str], BeforeValidator(_retry_when)] = ["always"]
    exit_codes: Annotated[list[int], BeforeValidator(_exit_codes)] = []

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_int(value):
            return {"max": _retry_max(value)}
        return require_mapping(value, "config has to be either an integer or a hash")


class AllowFailureConfig(Model):
    """`allow_failure: true` -> allowed; `{exit_codes: [...]}` allows only those exit codes."""

    allowed: bool = False
    exit_codes: Annotated[list[int], BeforeValidator(_exit_codes)] = []

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"allowed": value}
        mapping = require_mapping(value, "config should be a hash or a boolean value")
        if set(mapping) != {"exit_codes"}:
            unknown = [str(k) for k in mapping if k != "exit_codes"]
            if unknown:
                raise gitlab_error(f"config contains unknown keys: {', '.join(unknown)}")
            raise gitlab_error("config missing required keys: exit_codes")
        return {"allowed": False, "exit_codes": mapping["exit_codes"]}


class ParallelConfig(Model):
    """`parallel: N` (count) or `parallel: {matrix: [...]}` (matrix)."""

    count: int | None = None
    matrix: Matrix | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_int(value):
            if not 1 <= value <= 200:
                raise gitlab_error("config should be an integer from 1 to 200")
            return {"count": value}
        mapping = require_mapping(value, "should be an integer or a hash")
        if "count" in mapping:
            raise gitlab_error("config contains unknown keys: count")
        if "matrix" not in mapping:
            raise gitlab_error("config missing required keys: matrix")
        return mapping

    @model_validator(mode="after")
    def _matrix_size(self, info: ValidationInfo) -> Self:
        # GitLab's processor (not its schema) caps the jobs one matrix may create.
        if self.matrix is not None and not shape_only(info):
            jobs = sum(math.prod(len(values) for values in entry.values()) for entry in self.matrix)
            if jobs > 200:
                raise gitlab_error_at("matrix", "config generates too many jobs (maximum is 200)")
        return self


def _inherit_default(value: Any) -> bool | list[str]:
    if isinstance(value, bool):
        return value
    keys = string_list(value, allow_string=False, what="config should be a boolean or an array")
    for key in keys:
        one_of(key, INHERITABLE_DEFAULTS)
    return keys


def _inherit_variables(value: Any) -> bool | list[str]:
    if isinstance(value, bool):
        return value
    return string_list(value, allow_string=False, what="config should be a boolean or an array")


class InheritConfig(Model):
    default: Annotated[bool | list[str], BeforeValidator(_inherit_default)] = True
    variables: Annotated[bool | list[str], BeforeValidator(_inherit_variables)] = True


def optional_script(value: Any) -> list[str]:
    return flatten_script(value, allow_empty=True)


def required_script(value: Any) -> list[str]:
    return flatten_script(value, allow_empty=False)


OptionalScript = Annotated[list[str], BeforeValidator(optional_script)]
Script = Annotated[list[str], BeforeValidator(required_script)]


class HooksConfig(Model):
    pre_get_sources_script: OptionalScript | None = None


def tags(value: Any, info: ValidationInfo) -> list[str]:
    """`tags:` an array of non-empty strings (arrays of them are flattened). GitLab's schema
    wants at least one; GitLab's `Tags` entry takes an empty array too."""
    if not isinstance(value, list) or (not value and shape_only(info)):
        raise gitlab_error("config should be an array of strings")
    flat: list[str] = []
    for item in value:
        items = item if isinstance(item, list) and item else [item]
        for tag in items:
            if not is_str(tag) or not tag:
                raise gitlab_error("config should be an array of strings")
            flat.append(tag)
    return flat


Tags = Annotated[list[str], BeforeValidator(tags)]


def job_when(value: Any, info: ValidationInfo) -> str:
    """Job-level `when:`. GitLab's schema lists `never`; GitLab itself allows it only in
    rules, so only the shape check accepts it here."""
    if shape_only(info):
        return one_of_attribute(value, JOB_WHEN)
    return one_of_attribute(value, tuple(when for when in JOB_WHEN if when != "never"))
