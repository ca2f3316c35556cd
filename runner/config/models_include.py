"""Models of the file-level keywords: `include:` and the `spec:` header, and input definitions.

pyci resolves `include:local` (and reads `spec:inputs` defaults) elsewhere; here they are only
checked as GitLab's schema checks them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from runner.config.models_base import (
    Model,
    gitlab_error,
    gitlab_error_at,
    is_number,
    is_str,
    matches,
    one_of,
    require_mapping,
    string_list,
    text,
)
from runner.config.models_ignored import (
    REMOTE_FILE,
    YAML_FILE,
    Inputs,
    pick_variant,
    project_path,
    yaml_file,
)
from runner.config.models_rules import IncludeRules

INPUT_TYPES = ("array", "boolean", "number", "string")
COMPONENT_FIELDS = ("name", "sha", "version", "reference")


def _scalar_options(value: Any, max_items: int | None = None) -> list:
    ok = isinstance(value, list) and all(
        is_str(item) or is_number(item) or isinstance(item, bool) for item in value
    )
    if not ok:
        raise gitlab_error("config options should be an array of strings, numbers or booleans")
    if max_items is not None and len(value) > max_items:
        raise gitlab_error(f"config options has too many entries (maximum {max_items})")
    return list(value)


def _default_matches(kind: Any, default: Any, nullable: bool) -> bool:
    """Whether `default` fits the input's `type` (an unknown type is reported on its own)."""
    if kind is not None and kind not in INPUT_TYPES:
        return True
    if default is None:
        return nullable
    if kind == "number":
        return is_number(default)
    if kind == "boolean":
        return isinstance(default, bool)
    if kind == "array":
        return isinstance(default, list)
    return is_str(default)  # "string", or no type: inputs are strings by default


class InputConfig(Model):
    """One input definition, of `spec:inputs` or of a job's `inputs:`."""

    NULLABLE = frozenset({"default"})

    type: Annotated[str, BeforeValidator(lambda v: one_of(v, INPUT_TYPES))] = "string"
    description: Annotated[
        str | None, BeforeValidator(lambda v: matches(v, r"^[\s\S]{0,1024}$", "config is too long"))
    ] = None
    options: Annotated[list | None, BeforeValidator(_scalar_options)] = None
    regex: Annotated[str | None, BeforeValidator(text)] = None
    default: Any = None
    rules: list[InputRuleConfig] | None = None


class InputRuleConfig(Model):
    NULLABLE = frozenset({"default"})
    if_: Annotated[str | None, BeforeValidator(text), Field(alias="if")] = None
    options: Annotated[list | None, BeforeValidator(lambda v: _scalar_options(v, 50))] = None
    default: Any


InputConfig.model_rebuild()


def _spec_inputs(value: Any) -> dict:
    mapping = require_mapping(value)
    for name, definition in mapping.items():
        if definition is None:
            continue
        if not isinstance(definition, dict):
            raise gitlab_error_at(name, "config should be a hash")
        if "rules" in definition and ("options" in definition or "default" in definition):
            raise gitlab_error_at(name, "config can't combine rules with options or default")
        if (
            "rules" not in definition
            and "default" in definition
            and not _default_matches(definition.get("type"), definition["default"], nullable=True)
        ):
            raise gitlab_error_at(name, "config default does not match its type")
    return {str(name): definition or {} for name, definition in mapping.items()}


def job_inputs(value: Any) -> dict:
    """A job's `inputs:` (at most 50), each with a `default` of its declared type."""
    mapping = require_mapping(value)
    if len(mapping) > 50:
        raise gitlab_error("config has too many inputs (maximum 50)")
    for name, definition in mapping.items():
        if not isinstance(definition, dict):
            raise gitlab_error_at(name, "config should be a hash")
        if "rules" in definition:
            raise gitlab_error_at(name, "config contains unknown keys: rules")
        if "default" not in definition:
            raise gitlab_error_at(name, "config missing required keys: default")
        if not _default_matches(definition.get("type"), definition["default"], nullable=False):
            raise gitlab_error_at(name, "config default does not match its type")
    return {str(name): definition for name, definition in mapping.items()}


JobInputs = Annotated[dict[str, InputConfig], BeforeValidator(job_inputs)]


def _include_file(value: Any) -> list[str]:
    files = string_list(value)
    for file in files:
        yaml_file(file)
    return files


def _include_cache(value: Any) -> bool | str:
    if isinstance(value, bool) or (is_str(value) and value):
        return value
    raise gitlab_error("config should be a boolean value or a duration")


class IncludeConfig(Model):
    """One `include:` item in its long form."""

    local: Annotated[str | None, BeforeValidator(yaml_file)] = None
    project: Annotated[str | None, BeforeValidator(project_path)] = None
    ref: Annotated[str | None, BeforeValidator(text)] = None
    file: Annotated[list[str] | None, BeforeValidator(_include_file)] = None
    template: Annotated[str | None, BeforeValidator(yaml_file)] = None
    component: Annotated[str | None, BeforeValidator(text)] = None
    remote: Annotated[
        str | None, BeforeValidator(lambda v: matches(v, REMOTE_FILE, "config should be a URL"))
    ] = None
    integrity: Annotated[
        str | None,
        BeforeValidator(
            lambda v: matches(v, r"^sha256-[A-Za-z0-9+/]{43}=$", "config should be a sha256 hash")
        ),
    ] = None
    cache: Annotated[bool | str | None, BeforeValidator(_include_cache)] = None
    rules: IncludeRules | None = None
    inputs: Inputs | None = None

    @model_validator(mode="before")
    @classmethod
    def _variant(cls, value: Any) -> Any:
        if is_str(value):
            # `*` before the suffix: GitLab's wildcard local includes (`configs/**.yml`)
            if "$" not in value:
                message = "config should be the path of a .yml or .yaml file"
                matches(value, r"[\w*]" + YAML_FILE, message)
            if value.startswith(("http://", "https://")):
                return {"remote": value}
            if re.match(r"^\w+://", value):
                raise gitlab_error("config should be a local path or an http(s) URL")
            return {"local": value}
        common = ("rules", "inputs")
        return pick_variant(
            require_mapping(value, "config should be a hash or a string"),
            [
                (("local",), common),
                (("project", "file"), ("ref", *common)),
                (("template",), common),
                (("component",), common),
                (("remote",), ("integrity", "cache", *common)),
                (("file", "project"), ("ref", *common)),
            ],
            "local, project, template, component, remote",
        )


def includes(value: Any) -> list:
    return value if isinstance(value, list) else [value]


Includes = Annotated[list[IncludeConfig], BeforeValidator(includes)]


class SpecIncludeConfig(Model):
    local: Annotated[str | None, BeforeValidator(yaml_file)] = None
    project: Annotated[str | None, BeforeValidator(project_path)] = None
    ref: Annotated[str | None, BeforeValidator(text)] = None
    file: Annotated[list[str] | None, BeforeValidator(_include_file)] = None
    remote: Annotated[
        str | None, BeforeValidator(lambda v: matches(v, REMOTE_FILE, "config should be a URL"))
    ] = None
    integrity: Annotated[str | None, BeforeValidator(text)] = None
    cache: Annotated[bool | str | None, BeforeValidator(_include_cache)] = None

    @model_validator(mode="before")
    @classmethod
    def _variant(cls, value: Any) -> Any:
        return pick_variant(
            require_mapping(value),
            [
                (("local",), ()),
                (("project", "file"), ("ref",)),
                (("remote",), ("integrity", "cache")),
                (("file", "project"), ("ref",)),
            ],
            "local, project, remote",
        )


def _spec_list(value: Any) -> list:
    if not isinstance(value, list):
        raise gitlab_error("config should be an array")
    return value


class SpecConfig(Model):
    """The `spec:` header of a file meant to be included (or a CI/CD component)."""

    inputs: Annotated[dict[str, InputConfig] | None, BeforeValidator(_spec_inputs)] = None
    include: Annotated[list[SpecIncludeConfig] | None, BeforeValidator(_spec_list)] = None
    component: Annotated[
        list[str] | None,
        BeforeValidator(
            lambda v: [
                one_of(x, COMPONENT_FIELDS) for x in string_list(v, allow_string=False, unique=True)
            ]
        ),
    ] = None
    description: Annotated[
        str | None,
        BeforeValidator(
            lambda v: matches(v, r"^[\s\S]{0,256}$", "config is too long (maximum 256 characters)")
        ),
    ] = None
