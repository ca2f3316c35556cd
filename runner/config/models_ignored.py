"""Models of keywords that have no local effect: accepted, checked as GitLab checks them, and
reported once as ignored (runner.config.validate.ignored_keys), never silently dropped.

`trigger`, `environment`, `release`, `secrets`, `id_tokens`, `pages`, `run` (CI steps),
`inputs` of a job, `dast_configuration` and the include forms `trigger:include` uses.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, model_validator

from runner.config.models_base import (
    Model,
    gitlab_error,
    gitlab_error_at,
    is_int,
    is_str,
    matches,
    nonempty_text,
    one_of,
    require_mapping,
    string_list,
    text,
)

PROJECT_PATH = r"(?:\S/\S|\$\S+)"
YAML_FILE = r"\.ya?ml$"
REMOTE_FILE = r"^https?://.+\.ya?ml$"
NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
INPUT_NAME = r"^[a-zA-Z0-9_-]+$"


def project_path(value: Any) -> str:
    return matches(value, PROJECT_PATH, "config should be a project path like group/project")


def yaml_file(value: Any) -> str:
    """A path to a YAML file. A path with a `$VARIABLE` is taken as it is: GitLab expands
    variables in include paths before reading them (its schema does not know that)."""
    if is_str(value) and "$" in value:
        return value
    return matches(value, YAML_FILE, "config should be the path of a .yml or .yaml file")


def pick_variant(
    mapping: dict, variants: list[tuple[tuple[str, ...], tuple[str, ...]]], what: str
) -> dict:
    """Check a hash against the variant its first required key selects.

    `variants` are (required keys, optional keys); the first variant whose leading required key
    is present wins, as GitLab's schema `oneOf` does for include and trigger forms.
    """
    for required, optional in variants:
        if required[0] in mapping:
            missing = [key for key in required if key not in mapping]
            if missing:
                raise gitlab_error(f"config missing required keys: {', '.join(missing)}")
            unknown = [str(k) for k in mapping if k not in required and k not in optional]
            if unknown:
                raise gitlab_error(f"config contains unknown keys: {', '.join(unknown)}")
            return mapping
    raise gitlab_error(f"config should contain one of: {what}")


def inputs_map(value: Any) -> dict[str, Any]:
    """`inputs:` passed to an included file or a downstream pipeline."""
    mapping = require_mapping(value)
    for name, item in mapping.items():
        if not is_str(name) or not re.search(INPUT_NAME, name):
            raise gitlab_error(f"config contains an invalid input name: {name}")
        if is_str(item) and len(item) > 1024:
            raise gitlab_error_at(name, "config is too long (maximum 1024 characters)")
        if not (item is None or is_str(item) or isinstance(item, (int, float, list, dict))):
            raise gitlab_error_at(name, "config has an invalid value")
    return dict(mapping)


Inputs = Annotated[dict[str, Any], BeforeValidator(inputs_map)]


class TriggerIncludeConfig(Model):
    local: Annotated[str | None, BeforeValidator(yaml_file)] = None
    template: Annotated[str | None, BeforeValidator(yaml_file)] = None
    artifact: Annotated[str | None, BeforeValidator(yaml_file)] = None
    job: Annotated[str | None, BeforeValidator(text)] = None
    project: Annotated[str | None, BeforeValidator(project_path)] = None
    ref: Annotated[str | None, BeforeValidator(nonempty_text)] = None
    file: Annotated[str | None, BeforeValidator(yaml_file)] = None
    component: Annotated[str | None, BeforeValidator(text)] = None
    remote: Annotated[
        str | None, BeforeValidator(lambda v: matches(v, REMOTE_FILE, "config should be a URL"))
    ] = None
    inputs: Inputs | None = None

    @model_validator(mode="before")
    @classmethod
    def _variant(cls, value: Any) -> Any:
        return pick_variant(
            require_mapping(value),
            [
                (("local",), ("inputs",)),
                (("template",), ("inputs",)),
                (("artifact", "job"), ("inputs",)),
                (("project", "file"), ("ref", "inputs")),
                (("component",), ("inputs",)),
                (("remote",), ("inputs",)),
                (("file", "project"), ("ref", "inputs")),
                (("job", "artifact"), ("inputs",)),
            ],
            "local, template, artifact, project, component, remote",
        )


def _trigger_includes(value: Any) -> list:
    if is_str(value):
        return [{"local": yaml_file(value)}]
    if not isinstance(value, list):
        raise gitlab_error("config should be a string or an array")
    if len(value) > 3:
        raise gitlab_error("config has too many entries (maximum 3)")
    return value


class ForwardConfig(Model):
    yaml_variables: bool = True
    pipeline_variables: bool = False


class TriggerConfig(Model):
    """`trigger:` a downstream project, or a child pipeline from included files."""

    project: Annotated[str | None, BeforeValidator(project_path)] = None
    branch: Annotated[str | None, BeforeValidator(text)] = None
    strategy: Annotated[str | None, BeforeValidator(lambda v: one_of(v, ("depend", "mirror")))] = (
        None
    )
    inputs: Inputs | None = None
    forward: ForwardConfig | None = None
    include: Annotated[list[TriggerIncludeConfig] | None, BeforeValidator(_trigger_includes)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_str(value):
            return {"project": project_path(value)}
        mapping = require_mapping(value, "config should be a hash or a string")
        return pick_variant(
            mapping,
            [
                (("include",), ("strategy", "forward")),
                (("project",), ("branch", "strategy", "inputs", "forward")),
            ],
            "project, include",
        )


class EnvironmentConfig(Model):
    name: Annotated[str, BeforeValidator(nonempty_text)]
    url: Annotated[
        str | None,
        BeforeValidator(
            lambda v: matches(v, r"^(https?://.+|\$[A-Za-z]+)", "config should be a URL")
        ),
    ] = None
    on_stop: Annotated[str | None, BeforeValidator(text)] = None
    action: Annotated[
        str, BeforeValidator(lambda v: one_of(v, ("start", "prepare", "stop", "verify", "access")))
    ] = "start"
    auto_stop_in: Annotated[str | None, BeforeValidator(text)] = None
    kubernetes: Annotated[dict[str, Any] | None, BeforeValidator(require_mapping)] = None
    deployment_tier: Annotated[str | None, BeforeValidator(text)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_str(value):
            return {"name": value}
        return require_mapping(value, "config should be a hash or a string")


class ReleaseLinkConfig(Model):
    name: Annotated[str, BeforeValidator(nonempty_text)]
    url: Annotated[str, BeforeValidator(nonempty_text)]
    filepath: Annotated[str | None, BeforeValidator(text)] = None
    link_type: Annotated[
        str | None, BeforeValidator(lambda v: one_of(v, ("runbook", "package", "image", "other")))
    ] = None


def _links(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise gitlab_error("config should be a non-empty array")
    return value


class ReleaseAssetsConfig(Model):
    links: Annotated[list[ReleaseLinkConfig], BeforeValidator(_links)]


_RELEASED_AT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$"


class ReleaseConfig(Model):
    tag_name: Annotated[str, BeforeValidator(nonempty_text)]
    description: Annotated[str, BeforeValidator(nonempty_text)]
    tag_message: Annotated[str | None, BeforeValidator(text)] = None
    name: Annotated[str | None, BeforeValidator(text)] = None
    ref: Annotated[str | None, BeforeValidator(text)] = None
    milestones: Annotated[
        list[str] | None, BeforeValidator(lambda v: string_list(v, allow_string=False))
    ] = None
    released_at: Annotated[
        str | None,
        BeforeValidator(lambda v: matches(v, _RELEASED_AT, "config should be an ISO 8601 time")),
    ] = None
    assets: ReleaseAssetsConfig | None = None


def _vault(value: Any) -> Any:
    if is_str(value):
        return value
    mapping = require_mapping(value, "config should be a string or a hash")
    pick_variant(mapping, [(("engine", "path", "field"), ())], "engine, path, field")
    engine = require_mapping(mapping["engine"], "config engine should be a hash")
    if not all(is_str(engine.get(key)) for key in ("name", "path")):
        raise gitlab_error("config engine should have a name and a path")
    return dict(mapping)


def _provider(required: tuple[str, ...], optional: tuple[str, ...]):
    def check(value: Any) -> dict:
        mapping = require_mapping(value)
        pick_variant(mapping, [(required, optional)], ", ".join(required))
        for key, item in mapping.items():
            if not (is_str(item) or (key == "version" and is_int(item))):
                raise gitlab_error(f"config {key} should be a string")
        return dict(mapping)

    return check


class SecretConfig(Model):
    vault: Annotated[Any, BeforeValidator(_vault)] = None
    gcp_secret_manager: Annotated[
        dict | None, BeforeValidator(_provider(("name",), ("version",)))
    ] = None
    azure_key_vault: Annotated[dict | None, BeforeValidator(_provider(("name",), ("version",)))] = (
        None
    )
    aws_secrets_manager: Annotated[
        Any,
        BeforeValidator(
            lambda v: (
                v
                if is_str(v)
                else _provider(
                    ("secret_id",),
                    (
                        "version_id",
                        "version_stage",
                        "region",
                        "role_arn",
                        "role_session_name",
                        "field",
                    ),
                )(v)
            )
        ),
    ] = None
    gitlab_secrets_manager: Annotated[
        dict | None, BeforeValidator(_provider(("name",), ("source",)))
    ] = None
    file: bool = True
    token: Annotated[str | None, BeforeValidator(text)] = None

    @model_validator(mode="before")
    @classmethod
    def _provider_present(cls, value: Any) -> Any:
        mapping = require_mapping(value)
        providers = (
            "vault",
            "azure_key_vault",
            "gcp_secret_manager",
            "aws_secrets_manager",
            "gitlab_secrets_manager",
        )
        if not any(key in mapping for key in providers):
            raise gitlab_error(f"config should use one of: {', '.join(providers)}")
        if "gcp_secret_manager" in mapping and "token" not in mapping:
            raise gitlab_error("config missing required keys: token")
        return mapping


class IdTokenConfig(Model):
    aud: Annotated[list[str], BeforeValidator(lambda v: string_list(v, min_items=1, unique=True))]


class DastConfig(Model):
    site_profile: Annotated[str | None, BeforeValidator(text)] = None
    scanner_profile: Annotated[str | None, BeforeValidator(text)] = None


class PagesConfig(Model):
    """`pages:` of a job: true/false, or where and how long to publish."""

    enabled: bool = True
    path_prefix: Annotated[str | None, BeforeValidator(text)] = None
    expire_in: Annotated[str | None, BeforeValidator(text)] = None
    publish: Annotated[str | None, BeforeValidator(text)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        mapping = require_mapping(value, "config should be a hash or a boolean value")
        if "enabled" in mapping:
            raise gitlab_error("config contains unknown keys: enabled")
        return mapping


def _named(value: Any, values: bool) -> dict:
    """`env:` (names to strings) or `inputs:` (names to any value) of a CI step."""
    mapping = require_mapping(value)
    for key, item in mapping.items():
        if not is_str(key) or not re.search(NAME, key):
            raise gitlab_error(f"config has an invalid name: {key}")
        if not values and not is_str(item):
            raise gitlab_error_at(key, "config should be a string")
    return dict(mapping)


def _step_reference(value: Any) -> Any:
    """`step:`/`func:` of a CI step: a string, or a git or OCI reference."""
    if is_str(value):
        return value
    mapping = require_mapping(value, "config should be a string or a hash")
    pick_variant(mapping, [(("git",), ()), (("oci",), ())], "git, oci")
    if "git" in mapping:
        pick_variant(require_mapping(mapping["git"]), [(("url", "rev"), ("dir", "file"))], "url")
        inner = mapping["git"]
    else:
        pick_variant(
            require_mapping(mapping["oci"]),
            [(("registry", "repository", "tag"), ("dir", "file"))],
            "registry",
        )
        inner = mapping["oci"]
    if not all(is_str(item) for item in inner.values()):
        raise gitlab_error("config reference values should be strings")
    return dict(mapping)


class StepConfig(Model):
    """One item of `run:` (GitLab CI steps): a step reference or a script."""

    name: Annotated[str, BeforeValidator(lambda v: matches(v, NAME, "config should be a name"))]
    env: Annotated[dict[str, str] | None, BeforeValidator(lambda v: _named(v, False))] = None
    inputs: Annotated[dict[str, Any] | None, BeforeValidator(lambda v: _named(v, True))] = None
    step: Annotated[Any, BeforeValidator(_step_reference)] = None
    func: Annotated[Any, BeforeValidator(_step_reference)] = None
    script: Annotated[str | None, BeforeValidator(nonempty_text)] = None

    @model_validator(mode="before")
    @classmethod
    def _variant(cls, value: Any) -> Any:
        mapping = require_mapping(value)
        if "script" in mapping:
            return pick_variant(mapping, [(("name", "script"), ("env",))], "step, func, script")
        if ("step" in mapping) == ("func" in mapping):
            raise gitlab_error("config should use exactly one of: step, func, script")
        key = "step" if "step" in mapping else "func"
        return pick_variant(mapping, [((key, "name"), ("env", "inputs"))], "step, func, script")


def steps(value: Any) -> list:
    if not isinstance(value, list):
        raise gitlab_error("config should be an array of steps")
    return value


Steps = Annotated[list[StepConfig], BeforeValidator(steps)]


Secrets = dict[str, SecretConfig]
IdTokens = dict[str, IdTokenConfig]
