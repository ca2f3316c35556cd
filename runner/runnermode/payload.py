"""GitLab's job payload (`POST /api/v4/jobs/request`, 201) mapped onto the one job shape.

The payload (GitLab's lib/api/entities/ci/job_request/*, gitlab-runner's common/network.go
JobResponse) already holds what `JobSpec` holds, under other names: `steps` (the `script` step
is before_script + script joined by GitLab, `after_script` its own step), `variables` with
their flags, `image`/`services`, a list of `artifacts` (one archive, one entry per report),
`cache`, `runner_info.timeout`. What only runner mode needs (the job's id and token, `git_info`,
`dependencies` with their tokens, registry `credentials`, `features`, each artifacts entry's
type and format) stays beside the spec in `RunnerJob`.

Unknown fields are ignored with a debug line (GitLab adds fields over time). A payload that is
malformed (a wrong type where a value is needed) raises `PayloadError`: that job fails as a
system failure, the runner carries on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from runner.core.jobspec import (
    AllowFailure,
    ArtifactsSpec,
    CacheKey,
    CacheSpec,
    ImageSpec,
    JobSpec,
    ServiceSpec,
    Variable,
)

log = logging.getLogger(__name__)

KNOWN_FIELDS = frozenset(
    {
        *("id", "token", "allow_git_fetch", "job_info", "git_info", "runner_info"),
        *("variables", "steps", "image", "services", "artifacts", "cache", "credentials"),
        *("dependencies", "features", "secrets", "hooks", "policy_options", "inputs"),
    }
)
ARTIFACT_FORMATS = {"archive": "zip", "junit": "gzip", "dotenv": "gzip"}


class PayloadError(Exception):
    """The payload cannot describe a job (a field of the wrong type, a missing script)."""


@dataclass(frozen=True)
class GitInfo:
    repo_url: str
    ref: str = ""
    sha: str = ""
    before_sha: str = ""
    ref_type: str = ""
    refspecs: tuple[str, ...] = ()
    depth: int = 0  # 0: full history
    repo_object_format: str = "sha1"


@dataclass(frozen=True)
class Dependency:
    """A job whose artifacts this one downloads, with that job's own token."""

    id: int
    name: str
    token: str
    artifacts_filename: str | None = None
    artifacts_size: int | None = None


@dataclass(frozen=True)
class Credential:
    type: str
    url: str
    username: str
    password: str


@dataclass(frozen=True)
class ArtifactUpload:
    """One `artifacts` entry of the payload: the archive, or one report."""

    artifact_type: str  # archive, junit, dotenv, ...
    artifact_format: str  # zip, gzip, raw
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    untracked: bool = False
    when: str = "on_success"
    name: str | None = None
    expire_in: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    script: tuple[str, ...]
    timeout: int | None = None
    when: str = "on_success"
    allow_failure: bool = False


@dataclass(frozen=True)
class RunnerJob:
    """A job received from GitLab: the spec the build runs, and what only runner mode uses."""

    id: int
    token: str
    spec: JobSpec
    project_id: int
    project_name: str
    git: GitInfo
    steps: tuple[Step, ...] = ()
    uploads: tuple[ArtifactUpload, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    credentials: tuple[Credential, ...] = ()
    features: dict[str, Any] = field(default_factory=dict)
    allow_git_fetch: bool = False


def job_identity(payload: object) -> tuple[int, str] | None:
    """(id, token) of a payload, when it has them: enough to report a malformed one."""
    if not isinstance(payload, dict):
        return None
    job_id, token = payload.get("id"), payload.get("token")
    if isinstance(job_id, int) and isinstance(token, str) and token:
        return job_id, token
    return None


def parse_job(payload: dict[str, Any]) -> RunnerJob:
    """The job the payload describes; `PayloadError` names the first field that is wrong."""
    identity = job_identity(payload)
    if identity is None:
        raise PayloadError("the payload has no job id and token")
    for key in sorted(set(payload) - KNOWN_FIELDS):
        log.debug("job %s: payload field %r is not used by pyci", identity[0], key)
    info = _mapping(payload, "job_info")
    steps = tuple(_step(item, i) for i, item in enumerate(_list(payload, "steps")))
    uploads = tuple(_upload(item, i) for i, item in enumerate(_list(payload, "artifacts")))
    runner_info = _mapping(payload, "runner_info")
    timeout = runner_info.get("timeout")
    if timeout is not None and not isinstance(timeout, int | float):
        raise PayloadError("runner_info.timeout: not a number")
    script_step = next((s for s in steps if s.name == "script"), None)
    after_step = next((s for s in steps if s.name == "after_script"), None)
    for step in steps:
        if step.name not in ("script", "after_script"):
            log.debug("job %s: step %r is not run by pyci", identity[0], step.name)
    if script_step is None:
        raise PayloadError("steps: no `script` step")
    spec = JobSpec(
        name=_text(info, "name", "job_info.name"),
        stage=str(info.get("stage") or "test"),
        stage_index=0,
        script=script_step.script,
        after_script=after_step.script if after_step else (),
        variables=tuple(_variable(item, i) for i, item in enumerate(_list(payload, "variables"))),
        image=_image(payload.get("image")),
        services=tuple(_service(item, i) for i, item in enumerate(_list(payload, "services"))),
        artifacts=_artifacts(uploads),
        cache=tuple(_cache(item, i) for i, item in enumerate(_list(payload, "cache"))),
        allow_failure=AllowFailure(script_step.allow_failure),
        timeout=float(timeout) if timeout else None,
        dependencies=tuple(d.name for d in _dependencies(payload)),
    )
    return RunnerJob(
        id=identity[0],
        token=identity[1],
        spec=spec,
        project_id=int(info.get("project_id") or 0),
        project_name=str(info.get("project_name") or ""),
        git=_git_info(_mapping(payload, "git_info")),
        steps=steps,
        uploads=uploads,
        dependencies=_dependencies(payload),
        credentials=tuple(
            _credential(item, i) for i, item in enumerate(_list(payload, "credentials"))
        ),
        features=dict(_mapping(payload, "features")),
        allow_git_fetch=bool(payload.get("allow_git_fetch")),
    )


# --- the parts ------------------------------------------------------------------------------


def _mapping(data: dict[str, Any], key: str, where: str | None = None) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where or key}: not an object")
    return value


def _list(data: dict[str, Any], key: str, where: str | None = None) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where or key}: not a list")
    return value


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}: missing or not a string")
    return value


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _list(data, key, where)
    if not all(isinstance(item, str) for item in items):
        raise PayloadError(f"{where}: not a list of strings")
    return tuple(items)


def _item(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: not an object")
    return value


def _step(value: object, index: int) -> Step:
    where = f"steps[{index}]"
    item = _item(value, where)
    timeout = item.get("timeout")
    return Step(
        name=_text(item, "name", f"{where}.name"),
        script=_strings(item, "script", f"{where}.script"),
        timeout=int(timeout) if isinstance(timeout, int | float) else None,
        when=str(item.get("when") or "on_success"),
        allow_failure=bool(item.get("allow_failure")),
    )


def _variable(value: object, index: int) -> Variable:
    where = f"variables[{index}]"
    item = _item(value, where)
    key, text = item.get("key"), item.get("value")
    if not isinstance(key, str) or not key:
        raise PayloadError(f"{where}.key: missing or not a string")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise PayloadError(f"{where}.value ({key}): not a string")
    return Variable(
        key,
        text,
        public=bool(item.get("public", True)),
        file=bool(item.get("file")),
        masked=bool(item.get("masked")),
        raw=bool(item.get("raw")),
    )


def _platform(item: dict[str, Any]) -> str | None:
    options = item.get("executor_opts")
    docker = options.get("docker") if isinstance(options, dict) else None
    platform = docker.get("platform") if isinstance(docker, dict) else None
    return platform if isinstance(platform, str) and platform else None


def _pull_policy(item: dict[str, Any], where: str) -> tuple[str, ...]:
    value = item.get("pull_policy")
    if isinstance(value, str):
        return (value,)
    return _strings(item, "pull_policy", f"{where}.pull_policy")


def _optional_strings(item: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    return _strings(item, key, f"{where}.{key}") if item.get(key) is not None else None


def _image(value: object) -> ImageSpec | None:
    if value is None:
        return None
    item = _item(value, "image")
    if not item.get("name"):
        return None  # GitLab sends `image: {}` for a job without one
    user = item.get("user")
    return ImageSpec(
        name=_text(item, "name", "image.name"),
        entrypoint=_optional_strings(item, "entrypoint", "image"),
        pull_policy=_pull_policy(item, "image"),
        user=str(user) if user is not None else None,
        platform=_platform(item),
    )


def _service(value: object, index: int) -> ServiceSpec:
    where = f"services[{index}]"
    item = _item(value, where)
    alias = item.get("alias")
    if alias is not None and not isinstance(alias, str):
        raise PayloadError(f"{where}.alias: not a string")
    variables = tuple(
        _variable(var, i) for i, var in enumerate(_list(item, "variables", f"{where}.variables"))
    )
    if item.get("ports"):
        log.debug("%s: ports are for GitLab's web terminal, not used by pyci", where)
    return ServiceSpec(
        name=_text(item, "name", f"{where}.name"),
        # GitLab sends several aliases as one space-separated string
        aliases=tuple(alias.split()) if alias else (),
        entrypoint=_optional_strings(item, "entrypoint", where),
        command=_optional_strings(item, "command", where),
        variables=variables,
        pull_policy=_pull_policy(item, where),
        platform=_platform(item),
    )


def _upload(value: object, index: int) -> ArtifactUpload:
    where = f"artifacts[{index}]"
    item = _item(value, where)
    kind = str(item.get("artifact_type") or "archive")
    when = str(item.get("when") or "on_success")
    if when not in ("on_success", "on_failure", "always"):
        raise PayloadError(f"{where}.when: {when!r} is not on_success, on_failure or always")
    return ArtifactUpload(
        artifact_type=kind,
        artifact_format=str(item.get("artifact_format") or ARTIFACT_FORMATS.get(kind, "raw")),
        paths=_strings(item, "paths", f"{where}.paths"),
        exclude=_strings(item, "exclude", f"{where}.exclude"),
        untracked=bool(item.get("untracked")),
        when=when,
        name=str(item["name"]) if item.get("name") else None,
        expire_in=str(item["expire_in"]) if item.get("expire_in") else None,
    )


def _artifacts(uploads: tuple[ArtifactUpload, ...]) -> ArtifactsSpec:
    """The build's one ArtifactsSpec: the archive entry, plus every report's paths."""
    archive = next((u for u in uploads if u.artifact_type == "archive"), None)
    reports = tuple((u.artifact_type, u.paths) for u in uploads if u.artifact_type != "archive")
    first = archive or (uploads[0] if uploads else None)
    if first is None:
        return ArtifactsSpec()
    return ArtifactsSpec(
        paths=archive.paths if archive else (),
        exclude=archive.exclude if archive else (),
        untracked=archive.untracked if archive else False,
        when=first.when,  # type: ignore[arg-type]  # checked in _upload
        name=archive.name if archive else None,
        expire_in=first.expire_in,
        reports=reports,
    )


def _cache(value: object, index: int) -> CacheSpec:
    where = f"cache[{index}]"
    item = _item(value, where)
    policy = str(item.get("policy") or "pull-push")
    when = str(item.get("when") or "on_success")
    if policy not in ("pull", "push", "pull-push"):
        raise PayloadError(f"{where}.policy: {policy!r} is not pull, push or pull-push")
    if when not in ("on_success", "on_failure", "always"):
        raise PayloadError(f"{where}.when: {when!r} is not on_success, on_failure or always")
    key = item.get("key")
    return CacheSpec(
        # GitLab has already resolved `key:files` into a string
        key=CacheKey(value=str(key) if key else None),
        paths=_strings(item, "paths", f"{where}.paths"),
        untracked=bool(item.get("untracked")),
        policy=policy,  # type: ignore[arg-type]
        when=when,  # type: ignore[arg-type]
        fallback_keys=_strings(item, "fallback_keys", f"{where}.fallback_keys"),
    )


def _dependencies(payload: dict[str, Any]) -> tuple[Dependency, ...]:
    found = []
    for index, value in enumerate(_list(payload, "dependencies")):
        where = f"dependencies[{index}]"
        item = _item(value, where)
        if not isinstance(item.get("id"), int):
            raise PayloadError(f"{where}.id: missing or not a number")
        artifacts = _mapping(item, "artifacts_file", f"{where}.artifacts_file")
        size, filename = artifacts.get("size"), artifacts.get("filename")
        found.append(
            Dependency(
                id=item["id"],
                name=_text(item, "name", f"{where}.name"),
                token=_text(item, "token", f"{where}.token"),
                artifacts_filename=str(filename) if filename else None,
                artifacts_size=size if isinstance(size, int) else None,
            )
        )
    return tuple(found)


def _credential(value: object, index: int) -> Credential:
    where = f"credentials[{index}]"
    item = _item(value, where)
    return Credential(
        type=str(item.get("type") or ""),
        url=str(item.get("url") or ""),
        username=str(item.get("username") or ""),
        password=str(item.get("password") or ""),
    )


def _git_info(item: dict[str, Any]) -> GitInfo:
    depth = item.get("depth") or 0
    if not isinstance(depth, int):
        raise PayloadError("git_info.depth: not a number")
    return GitInfo(
        repo_url=_text(item, "repo_url", "git_info.repo_url"),
        ref=str(item.get("ref") or ""),
        sha=str(item.get("sha") or ""),
        before_sha=str(item.get("before_sha") or ""),
        ref_type=str(item.get("ref_type") or ""),
        refspecs=_strings(item, "refspecs", "git_info.refspecs"),
        depth=depth,
        repo_object_format=str(item.get("repo_object_format") or "sha1"),
    )
