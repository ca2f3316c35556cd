"""pydantic models of every keyword of GitLab's `.gitlab-ci.yml`, normalised to one long form.

`JobConfig` is one job, `DefaultConfig` the `default:` section, `PipelineConfig` the whole file
(global keywords + jobs). Field names are GitLab's keywords (`if` and `except` are spelled `if_`
and `except_` in Python, with their GitLab names as aliases). Every model is strict and forbids
unknown keys; validation of a whole pipeline lives in runner.config.validate.

Two modes, chosen with the validation context `{"shape": True}`:
- shape (`pyci validate --shape-only`): what GitLab's JSON schema checks, for one raw file;
- full (default): also what GitLab's own YAML processor checks on an expanded job (a `script:`
  is required, `start_in` only with `when: delayed`, `timeout` must be a duration, ...).
"""

import importlib
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from runner.config.models_artifacts import (
    ArtifactsConfig,
    CacheConfig,
    CacheKeyConfig,
    Caches,
    CoverageReportConfig,
)
from runner.config.models_base import (
    Deferred,
    Model,
    gitlab_error,
    is_str,
    nonempty_text,
    parse_duration,
    scalar_text,
    shape_only,
    string_list,
    text,
)
from runner.config.models_job import (
    AllowFailureConfig,
    GlobalVariables,
    HooksConfig,
    ImageConfig,
    InheritConfig,
    JobVariables,
    OptionalScript,
    ParallelConfig,
    RetryConfig,
    Script,
    ServiceConfig,
    Services,
    Tags,
    VariableConfig,
    job_when,
)
from runner.config.models_rules import (
    AutoCancelConfig,
    ChangesConfig,
    ExistsConfig,
    NeedConfig,
    Needs,
    OnlyExceptConfig,
    RuleConfig,
    Rules,
    WorkflowConfig,
    WorkflowRuleConfig,
)

if TYPE_CHECKING:  # at run time these come through `__getattr__` below, on first use
    from runner.config.models_ignored import (
        DastConfig,
        EnvironmentConfig,
        IdTokenConfig,
        PagesConfig,
        ReleaseConfig,
        SecretConfig,
        StepConfig,
        TriggerConfig,
    )
    from runner.config.models_include import IncludeConfig, InputConfig, SpecConfig

__all__ = [
    "AllowFailureConfig",
    "ArtifactsConfig",
    "AutoCancelConfig",
    "CacheConfig",
    "CacheKeyConfig",
    "ChangesConfig",
    "CoverageReportConfig",
    "DastConfig",
    "DefaultConfig",
    "EnvironmentConfig",
    "ExistsConfig",
    "HooksConfig",
    "IdTokenConfig",
    "ImageConfig",
    "IncludeConfig",
    "InheritConfig",
    "InputConfig",
    "JobConfig",
    "NeedConfig",
    "OnlyExceptConfig",
    "PagesConfig",
    "ParallelConfig",
    "PipelineConfig",
    "ReleaseConfig",
    "RetryConfig",
    "RuleConfig",
    "SecretConfig",
    "ServiceConfig",
    "SpecConfig",
    "StepConfig",
    "TriggerConfig",
    "VariableConfig",
    "WorkflowConfig",
    "WorkflowRuleConfig",
    "parse_duration",
]

_IGNORED = "runner.config.models_ignored"
_INCLUDE = "runner.config.models_include"
_JOB = "runner.config.models_job"
# Models of rarely written keywords, imported (and built) only when asked for: see `Deferred`.
_DEFERRED_EXPORTS = {
    **dict.fromkeys(
        (
            "DastConfig",
            "EnvironmentConfig",
            "IdTokenConfig",
            "PagesConfig",
            "ReleaseConfig",
            "SecretConfig",
            "StepConfig",
            "TriggerConfig",
        ),
        _IGNORED,
    ),
    **dict.fromkeys(("IncludeConfig", "InputConfig", "SpecConfig"), _INCLUDE),
}


def __getattr__(name: str) -> Any:
    module = _DEFERRED_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


DEFAULT_STAGES = ("build", "test", "deploy")
# Keywords a job may carry that change nothing when pyci runs it locally.
IGNORED_KEYWORDS = (
    "tags",
    "interruptible",
    "secrets",
    "id_tokens",
    "identity",
    "release",
    "pages",
    "publish",
    "environment",
    "resource_group",
    "run",
    "hooks",
    "inputs",
    "dast_configuration",
    "manual_confirmation",
)


def _stage(value: Any) -> str:
    """`stage:` a name. GitLab's schema also lets an array through (an expanded `!reference`);
    its first name is taken."""
    if isinstance(value, list) and value and all(is_str(item) and item for item in value):
        return value[0]
    if not is_str(value) or not value:
        raise gitlab_error("config should be a string")
    return value


def _extends(value: Any) -> list[str]:
    return string_list(value, min_items=1, what="config should be a string or an array of strings")


def _coverage(value: Any) -> str:
    if not is_str(value) or len(value) < 3 or not (value.startswith("/") and value.endswith("/")):
        raise gitlab_error("config must be a regular expression")
    return value


def _dependencies(value: Any) -> list[str]:
    return string_list(value, allow_string=False)


def _identity(value: Any) -> str:
    if value != "google_cloud":
        raise gitlab_error("config should be one of: google_cloud")
    return value


class JobConfig(Model):
    """One job, every keyword normalised; `None` means "not written" (defaults apply later)."""

    NULLABLE = frozenset({"artifacts", "rules", "only", "except"})

    script: Script | None = None
    before_script: OptionalScript | None = None
    after_script: OptionalScript | None = None
    hooks: Annotated[HooksConfig | None, Deferred(HooksConfig)] = None
    image: Annotated[ImageConfig | None, Deferred(ImageConfig)] = None
    services: Annotated[Services | None, Deferred(Services)] = None
    stage: Annotated[str | None, BeforeValidator(_stage)] = None
    extends: Annotated[list[str] | None, BeforeValidator(_extends)] = None
    variables: Annotated[JobVariables, Deferred(JobVariables)] = {}
    rules: Annotated[Rules | None, Deferred(Rules)] = None
    only: Annotated[OnlyExceptConfig | None, Deferred(OnlyExceptConfig)] = None
    except_: Annotated[
        OnlyExceptConfig | None, Deferred(OnlyExceptConfig), Field(alias="except")
    ] = None
    needs: Annotated[Needs | None, Deferred(Needs)] = None
    dependencies: Annotated[list[str] | None, BeforeValidator(_dependencies)] = None
    when: Annotated[str | None, BeforeValidator(job_when)] = None
    start_in: Annotated[str | None, BeforeValidator(nonempty_text)] = None
    manual_confirmation: Annotated[str | None, BeforeValidator(text)] = None
    allow_failure: Annotated[AllowFailureConfig | None, Deferred(AllowFailureConfig)] = None
    timeout: Annotated[str | None, BeforeValidator(nonempty_text)] = None
    retry: Annotated[RetryConfig | None, Deferred(RetryConfig)] = None
    parallel: Annotated[ParallelConfig | None, Deferred(ParallelConfig)] = None
    cache: Annotated[Caches | None, Deferred(Caches)] = None
    artifacts: Annotated[ArtifactsConfig | None, Deferred(ArtifactsConfig)] = None
    coverage: Annotated[str | None, BeforeValidator(_coverage)] = None
    inherit: Annotated[InheritConfig | None, Deferred(InheritConfig)] = None
    interruptible: bool | None = None
    tags: Tags | None = None
    resource_group: Annotated[str | None, BeforeValidator(text)] = None
    environment: Annotated[Any, Deferred(_IGNORED + ":EnvironmentConfig")] = None
    release: Annotated[Any, Deferred(_IGNORED + ":ReleaseConfig")] = None
    trigger: Annotated[Any, Deferred(_IGNORED + ":TriggerConfig")] = None
    run: Annotated[Any, Deferred(_IGNORED + ":Steps")] = None
    secrets: Annotated[Any, Deferred(_IGNORED + ":Secrets")] = None
    id_tokens: Annotated[Any, Deferred(_IGNORED + ":IdTokens")] = None
    identity: Annotated[str | None, BeforeValidator(_identity)] = None
    inputs: Annotated[Any, Deferred(_INCLUDE + ":JobInputs")] = None
    dast_configuration: Annotated[Any, Deferred(_IGNORED + ":DastConfig")] = None
    pages: Annotated[Any, Deferred(_IGNORED + ":PagesConfig")] = None
    publish: Annotated[str | None, BeforeValidator(text)] = None

    @model_validator(mode="before")
    @classmethod
    def _hash(cls, value: Any) -> Any:
        mapping = dict(_job_mapping(value))
        # `secrets:`/`id_tokens:` names may be YAML numbers; GitLab sees them as strings.
        for key in ("secrets", "id_tokens"):
            if isinstance(mapping.get(key), dict):
                mapping[key] = {scalar_text(name): item for name, item in mapping[key].items()}
        return mapping

    @model_validator(mode="after")
    def _job_rules(self, info: ValidationInfo) -> Self:
        # A job that extends another may get its start_in from there: only the full check,
        # after expansion, can tell.
        lenient = shape_only(info) and self.extends is not None
        if self.when == "delayed" and self.start_in is None and not lenient:
            raise gitlab_error("config start_in should be a duration when `when` is delayed")
        return self


def _job_mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise gitlab_error("config should be a hash")
    return value


class DefaultConfig(Model):
    """`default:`: values every job inherits unless it sets its own (or `inherit:` says no)."""

    NULLABLE = frozenset({"artifacts"})

    after_script: OptionalScript | None = None
    before_script: OptionalScript | None = None
    artifacts: Annotated[ArtifactsConfig | None, Deferred(ArtifactsConfig)] = None
    hooks: Annotated[HooksConfig | None, Deferred(HooksConfig)] = None
    cache: Annotated[Caches | None, Deferred(Caches)] = None
    image: Annotated[ImageConfig | None, Deferred(ImageConfig)] = None
    interruptible: bool | None = None
    id_tokens: Annotated[Any, Deferred(_IGNORED + ":IdTokens")] = None
    identity: Annotated[str | None, BeforeValidator(_identity)] = None
    retry: Annotated[RetryConfig | None, Deferred(RetryConfig)] = None
    services: Annotated[Services | None, Deferred(Services)] = None
    tags: Tags | None = None
    timeout: Annotated[str | None, BeforeValidator(nonempty_text)] = None


def _stages(value: Any, info: ValidationInfo) -> list[str]:
    """`stages:` names, where an item may itself be a list of names (an expanded reference).
    GitLab's schema wants at least one; its `Stages` entry takes an empty array (leaving only
    `.pre` and `.post`)."""
    what = "config should be an array of strings"
    if not isinstance(value, list) or (not value and shape_only(info)):
        raise gitlab_error(what)
    names: list[str] = []
    for item in value:
        group = item if isinstance(item, list) else [item]
        if not all(is_str(name) for name in group):
            raise gitlab_error(what)
        names.extend(group)
    if len({repr(item) for item in value}) != len(value):
        raise gitlab_error("config should not contain duplicate stages")
    return names


class PipelineConfig(Model):
    """A whole pipeline: global keywords (including the deprecated global job defaults) + jobs."""

    stages: Annotated[list[str], BeforeValidator(_stages)] = list(DEFAULT_STAGES)
    variables: Annotated[GlobalVariables, Deferred(GlobalVariables)] = {}
    workflow: Annotated[WorkflowConfig | None, Deferred(WorkflowConfig)] = None
    default: Annotated[DefaultConfig | None, Deferred(DefaultConfig)] = None
    include: Annotated[Any, Deferred(_INCLUDE + ":Includes")] = None
    spec: Annotated[Any, Deferred(_INCLUDE + ":SpecConfig")] = None
    schema_url: Annotated[str | None, BeforeValidator(text), Field(alias="$schema")] = None
    # Deprecated global forms of `default:` keys, still honoured by GitLab.
    image: Annotated[ImageConfig | None, Deferred(ImageConfig)] = None
    services: Annotated[Services | None, Deferred(Services)] = None
    before_script: OptionalScript | None = None
    after_script: OptionalScript | None = None
    cache: Annotated[Caches | None, Deferred(Caches)] = None
    jobs: Annotated[dict[str, JobConfig], Deferred(f"{__name__}:Jobs")] = {}

    def all_stages(self) -> list[str]:
        """Stages in order, with GitLab's implicit `.pre` first and `.post` last."""
        middle = [name for name in self.stages if name not in (".pre", ".post")]
        return [".pre", *middle, ".post"]


Jobs = dict[str, JobConfig]

GLOBAL_KEYWORDS = tuple(
    field.alias or name for name, field in PipelineConfig.model_fields.items() if name != "jobs"
)
