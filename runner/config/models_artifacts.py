"""Models of what a job keeps: `artifacts:` and `cache:` (one or a list of caches)."""

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from runner.config.models_base import (
    Deferred,
    Model,
    deep_flatten,
    gitlab_error,
    gitlab_error_at,
    is_str,
    one_of,
    one_of_attribute,
    require_mapping,
    shape_only,
    string_list,
    text,
)

ARTIFACTS_WHEN = ("on_success", "on_failure", "always")
ARTIFACTS_ACCESS = ("none", "developer", "maintainer", "all")
CACHE_WHEN = ("on_success", "on_failure", "always")
CACHE_POLICIES = ("pull-push", "pull", "push")
# Report types whose value is a path or a list of paths.
FILE_REPORTS = (
    "api_fuzzing",
    "junit",
    "coverage_fuzzing",
    "codequality",
    "dotenv",
    "lsif",
    "sast",
    "dependency_scanning",
    "container_scanning",
    "dast",
    "license_management",
    "license_scanning",
    "requirements",
    "secret_detection",
    "metrics",
    "terraform",
    "cyclonedx",
    "sarif",
    "load_performance",
    "repository_xray",
)
# Report types whose value is exactly one path.
SINGLE_FILE_REPORTS = ("accessibility", "annotations", "browser_performance")
COVERAGE_FORMATS = ("cobertura", "jacoco")


def _paths(value: Any, info: ValidationInfo) -> list[str]:
    """`paths:`/`exclude:`: GitLab's schema wants at least one; its `Artifacts` entry takes
    any array of strings, an empty one too."""
    return string_list(value, allow_string=False, min_items=1 if shape_only(info) else 0)


class CoverageReportConfig(Model):
    coverage_format: Annotated[
        str | None, BeforeValidator(lambda v: one_of(v, COVERAGE_FORMATS))
    ] = None
    path: Annotated[str | None, BeforeValidator(text)] = None


def _coverage_report(value: Any) -> CoverageReportConfig:
    mapping = require_mapping(value, "config coverage_report should be a hash")
    unknown = [str(k) for k in mapping if k not in ("coverage_format", "path")]
    if unknown:
        raise gitlab_error(f"config coverage_report contains unknown keys: {', '.join(unknown)}")
    fmt = mapping.get("coverage_format")
    if fmt is not None and fmt not in COVERAGE_FORMATS:
        raise gitlab_error(
            f"config coverage_format should be one of: {', '.join(COVERAGE_FORMATS)}"
        )
    path = mapping.get("path")
    if path is not None and (not is_str(path) or not path):
        raise gitlab_error("config coverage_report path should be a non-empty string")
    return CoverageReportConfig(coverage_format=fmt, path=path)


def _reports(value: Any, info: ValidationInfo) -> dict[str, Any]:
    """`artifacts:reports`, each report type to a list of paths (coverage_report to a model).

    GitLab's schema wants one string for some types and at least one junit path; GitLab's
    `Reports` entry takes a string or an array of strings for every type."""
    strict = not shape_only(info)
    mapping = require_mapping(value)
    unknown = [
        str(k) for k in mapping if k not in (*FILE_REPORTS, *SINGLE_FILE_REPORTS, "coverage_report")
    ]
    if unknown:
        raise gitlab_error(f"config contains unknown keys: {', '.join(unknown)}")
    reports: dict[str, Any] = {}
    for kind, paths in mapping.items():
        if kind == "coverage_report":
            if paths is not None:
                reports[kind] = _coverage_report(paths)
            continue
        if kind in SINGLE_FILE_REPORTS and not strict:
            if not is_str(paths):
                raise gitlab_error(f"config {kind} should be a string")
            reports[kind] = [paths]
            continue
        try:
            reports[kind] = string_list(
                paths,
                min_items=1 if kind == "junit" and not strict else 0,
                what="config should be a string or an array of strings",
            )
        except PydanticCustomError as exc:
            raise gitlab_error_at(kind, exc.message()) from None
    return reports


class ArtifactsConfig(Model):
    """`artifacts:`; `reports` maps a report type to its paths (coverage_report: a model)."""

    paths: Annotated[list[str], BeforeValidator(_paths)] = []
    exclude: Annotated[list[str], BeforeValidator(_paths)] = []
    untracked: bool = False
    when: Annotated[
        str,
        BeforeValidator(
            lambda v: one_of_attribute(
                v, ARTIFACTS_WHEN, "should be on_success, on_failure or always"
            )
        ),
    ] = "on_success"
    name: Annotated[str | None, BeforeValidator(text)] = None
    expire_in: Annotated[str | None, BeforeValidator(text)] = None
    expose_as: Annotated[str | None, BeforeValidator(text)] = None
    public: bool | None = None
    access: Annotated[str | None, BeforeValidator(lambda v: one_of(v, ARTIFACTS_ACCESS))] = None
    reports: Annotated[dict[str, Any], BeforeValidator(_reports)] = {}

    @model_validator(mode="before")
    @classmethod
    def _both(cls, value: Any) -> Any:
        mapping = require_mapping(value)
        if "access" in mapping and "public" in mapping:
            raise gitlab_error("config can't use both public and access")
        return mapping


_CACHE_KEY = re.compile(r"^[^/]*[^./][^/]*$")


def _cache_key_value(value: Any) -> str:
    if not is_str(value):
        raise gitlab_error("config should be a string or symbol")
    if "/" in value:
        raise gitlab_error('config cannot contain the "/" character')
    if not _CACHE_KEY.match(value):
        raise gitlab_error('config cannot be "." or ".."')
    return value


def _symbol(value: Any) -> str:
    if not is_str(value):
        raise gitlab_error("config should be a string or symbol")
    return value


class CacheKeyConfig(Model):
    """`cache:key`: a fixed `value`, or the hash of `files` (or of their last commits)."""

    value: Annotated[str | None, BeforeValidator(_cache_key_value)] = None
    files: Annotated[
        list[str],
        BeforeValidator(lambda v: string_list(v, allow_string=False, min_items=1, max_items=10)),
    ] = []
    files_commits: Annotated[
        list[str],
        BeforeValidator(lambda v: string_list(v, allow_string=False, min_items=1, max_items=2)),
    ] = []
    prefix: Annotated[str | None, BeforeValidator(_symbol)] = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if is_str(value):
            return {"value": _cache_key_value(value)}
        mapping = require_mapping(value, "should be a hash, a string or a symbol")
        if "value" in mapping:
            raise gitlab_error("config contains unknown keys: value")
        if not ("files" in mapping or "files_commits" in mapping):
            raise gitlab_error("config missing required keys: files")
        return mapping


def _policy(value: Any) -> str:
    if is_str(value) and (value in CACHE_POLICIES or re.fullmatch(r"\$\w{1,255}", value)):
        return value
    raise gitlab_error(f"config should be one of: {', '.join(CACHE_POLICIES)} or a variable")


class CacheConfig(Model):
    key: Annotated[CacheKeyConfig, Deferred(CacheKeyConfig)] = Field(
        default_factory=lambda: CacheKeyConfig.model_validate("default")
    )
    paths: Annotated[list[str], BeforeValidator(lambda v: string_list(v, allow_string=False))] = []
    untracked: bool = False
    policy: Annotated[str, BeforeValidator(_policy)] = "pull-push"
    when: Annotated[str, BeforeValidator(lambda v: one_of_attribute(v, CACHE_WHEN))] = "on_success"
    fallback_keys: Annotated[
        list[str], BeforeValidator(lambda v: string_list(v, allow_string=False, max_items=5))
    ] = []
    unprotect: bool = False


MAX_CACHES = 4


def caches(value: Any, info: ValidationInfo) -> list:
    """`cache:` is one cache or a list of them (GitLab's processor allows up to 4)."""
    if isinstance(value, list):
        if not shape_only(info):
            value = deep_flatten(value)  # GitLab's `Caches` splices nested arrays in
        if len(value) > MAX_CACHES and not shape_only(info):
            raise gitlab_error(f"config no more than {MAX_CACHES} caches can be created")
        return value
    return [require_mapping(value, "config should be a hash or an array of hashes")]


Caches = Annotated[list[CacheConfig], BeforeValidator(caches)]
