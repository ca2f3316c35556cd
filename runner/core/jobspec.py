"""The one job shape every executor consumes.

A `JobSpec` is plain, frozen data: whether it came from a local `.gitlab-ci.yml` (the planner) or
from GitLab's `/api/v4/jobs/request` payload (runner mode), executors and the build see only
this. It mirrors that payload on purpose: variables are a list of (key, value, flags) still
unexpanded, scripts are lists of lines, artifacts and caches are lists.

Nothing here knows about YAML, rules or stages of other jobs; the scheduler gets the ordering
facts (`needs`, `stage_index`, `when`, ...) and the build gets the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

When = Literal["on_success", "on_failure", "always", "manual", "delayed", "never"]
ArtifactsWhen = Literal["on_success", "on_failure", "always"]
CachePolicy = Literal["pull", "push", "pull-push"]
CacheWhen = Literal["on_success", "on_failure", "always"]


@dataclass(frozen=True)
class Variable:
    """A CI/CD variable as the runner receives it.

    `raw` is GitLab's `expand: false`: the value is used as written. `file` makes the variable
    hold the path of a temporary file with the value as its content. `masked` values are
    replaced by `[MASKED]` in every output.
    """

    key: str
    value: str
    public: bool = True
    file: bool = False
    masked: bool = False
    raw: bool = False


@dataclass(frozen=True)
class ImageSpec:
    name: str
    entrypoint: tuple[str, ...] | None = None
    pull_policy: tuple[str, ...] = ()
    user: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    aliases: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    variables: tuple[Variable, ...] = ()
    pull_policy: tuple[str, ...] = ()
    platform: str | None = None  # runner mode: GitLab's executor_opts.docker.platform


@dataclass(frozen=True)
class ArtifactsSpec:
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    untracked: bool = False
    when: ArtifactsWhen = "on_success"
    name: str | None = None
    expire_in: str | None = None
    # report type -> paths, e.g. ("dotenv", ("build.env",)), ("junit", ("report.xml",))
    reports: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.paths or self.untracked or self.reports)


@dataclass(frozen=True)
class CacheKey:
    """`cache:key` as written: a string, or `files` (+ `prefix`) hashed at run time."""

    value: str | None = None
    files: tuple[str, ...] = ()
    prefix: str | None = None


@dataclass(frozen=True)
class CacheSpec:
    key: CacheKey = field(default_factory=CacheKey)
    paths: tuple[str, ...] = ()
    untracked: bool = False
    policy: CachePolicy = "pull-push"
    when: CacheWhen = "on_success"
    fallback_keys: tuple[str, ...] = ()
    unprotect: bool = False


@dataclass(frozen=True)
class Need:
    """An edge of the DAG: `job` is a concrete job name (matrix already expanded)."""

    job: str
    artifacts: bool = True
    optional: bool = False


@dataclass(frozen=True)
class AllowFailure:
    allowed: bool = False
    exit_codes: tuple[int, ...] = ()

    def permits(self, exit_code: int | None) -> bool:
        """Whether a failure with this exit code is allowed (None: no exit code, e.g. timeout)."""
        if self.exit_codes:
            return exit_code in self.exit_codes
        return self.allowed


@dataclass(frozen=True)
class RetrySpec:
    max: int = 0
    when: tuple[str, ...] = ("always",)
    exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class TriggerSpec:
    """`trigger:` of a bridge job: a child pipeline made of `includes` (each a plain mapping
    as written: `{"local": path}`, `{"artifact": path, "job": name}`, `{"project": ...}`), or
    a downstream `project` (multi-project, which cannot run locally)."""

    includes: tuple[dict, ...] = ()
    project: str | None = None
    branch: str | None = None
    strategy: str | None = None  # "depend": the bridge job takes the child's status
    forward_yaml_variables: bool = True
    forward_pipeline_variables: bool = False
    inputs: dict | None = None
    variables: tuple[Variable, ...] = ()  # the bridge's YAML variables, forwarded by default


@dataclass(frozen=True)
class JobSpec:
    name: str
    stage: str
    stage_index: int
    script: tuple[str, ...]
    before_script: tuple[str, ...] = ()
    after_script: tuple[str, ...] = ()
    variables: tuple[Variable, ...] = ()
    image: ImageSpec | None = None
    services: tuple[ServiceSpec, ...] = ()
    artifacts: ArtifactsSpec = field(default_factory=ArtifactsSpec)
    cache: tuple[CacheSpec, ...] = ()
    when: When = "on_success"
    start_in: float | None = None  # seconds, for when: delayed
    allow_failure: AllowFailure = field(default_factory=AllowFailure)
    retry: RetrySpec = field(default_factory=RetrySpec)
    timeout: float | None = None  # seconds; None: the runner default
    # None: the job waits for all earlier stages; a tuple (maybe empty) is a DAG edge list
    needs: tuple[Need, ...] | None = None
    # None: artifacts of every job of earlier stages (and of needs); a tuple limits them
    dependencies: tuple[str, ...] | None = None
    coverage: str | None = None
    environment: str | None = None
    node_index: int | None = None  # CI_NODE_INDEX for parallel jobs
    node_total: int | None = None
    # keywords accepted from the YAML but with no local effect (tags, interruptible, ...)
    ignored_keys: tuple[str, ...] = ()
    trigger: TriggerSpec | None = None  # a bridge job: runs a child pipeline, no script

    def variable(self, key: str) -> str | None:
        """The last definition of `key` (later entries take precedence), unexpanded."""
        for var in reversed(self.variables):
            if var.key == key:
                return var.value
        return None
