"""GitLab's job payload mapped onto `JobSpec` (+ `RunnerJob`): the documented example maps
without loss, unknown fields are ignored with a debug line, malformed ones are a
`PayloadError` naming the field."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import pytest

from runner.core.jobspec import CacheKey, Variable
from runner.runnermode.payload import PayloadError, job_identity, parse_job

EXAMPLE = Path(__file__).parents[1] / "conformance" / "runner-api" / "job_response_example.json"


@pytest.fixture
def payload() -> dict:
    return json.loads(EXAMPLE.read_text())


def test_gitlab_example_maps_without_loss(payload: dict) -> None:
    job = parse_job(payload)
    spec = job.spec
    assert (job.id, job.token) == (10, "job-token")
    assert (spec.name, spec.stage) == ("test-job", "test")
    assert (job.project_id, job.project_name) == (123, "test-project")
    assert job.allow_git_fetch is False
    git = job.git
    assert git.repo_url == payload["git_info"]["repo_url"]
    assert (git.ref, git.sha, git.before_sha, git.ref_type) == (
        "main",
        "abcdef123456",
        "654321fedcba",
        "branch",
    )
    assert spec.timeout == 3600.0
    assert spec.variables == (
        Variable("CI_REF_NAME", "main", public=True, file=True, masked=False, raw=True),
    )
    assert spec.script == ("date", "ls -ls")
    assert spec.after_script == ("ls -ls",)
    assert [(s.name, s.timeout, s.when, s.allow_failure) for s in job.steps] == [
        ("script", 3600, "on_success", False),
        ("after_script", 3600, "always", True),
    ]
    assert spec.allow_failure.allowed is False
    assert spec.image is not None
    assert (spec.image.name, spec.image.entrypoint, spec.image.platform) == (
        "ruby:3.3",
        ("/bin/sh",),
        "arm64/v8",
    )
    pg, mysql = spec.services
    assert (pg.name, pg.aliases, pg.entrypoint, pg.command, pg.platform) == (
        "postgresql:9.5",
        ("db-pg",),
        ("/bin/sh",),
        ("sleep", "30"),
        "amd64/linux",
    )
    assert (mysql.name, mysql.aliases, mysql.entrypoint, mysql.platform) == (
        "mysql:5.6",
        ("db-mysql",),
        None,
        "arm",
    )
    (upload,) = job.uploads
    assert (upload.artifact_type, upload.artifact_format) == ("archive", "zip")
    assert (upload.name, upload.paths, upload.untracked, upload.when, upload.expire_in) == (
        "artifact.zip",
        ("out/*",),
        False,
        "always",
        "7d",
    )
    artifacts = spec.artifacts
    assert (artifacts.paths, artifacts.when, artifacts.name, artifacts.expire_in) == (
        ("out/*",),
        "always",
        "artifact.zip",
        "7d",
    )
    (cache,) = spec.cache
    assert cache.key == CacheKey(value="$CI_COMMIT_SHA")
    assert (cache.paths, cache.untracked, cache.policy) == (("vendor/*",), False, "push")
    (credential,) = job.credentials
    assert (credential.type, credential.url, credential.username, credential.password) == (
        "Registry",
        "http://registry.gitlab.example.com/",
        "gitlab-ci-token",
        "job-token",
    )
    (dependency,) = job.dependencies
    assert (dependency.id, dependency.name, dependency.token) == (9, "other-job", "other-job-token")
    assert (dependency.artifacts_filename, dependency.artifacts_size) == ("binaries.zip", 13631488)
    assert spec.dependencies == ("other-job",)


def test_reports_keep_their_type_and_format(payload: dict) -> None:
    payload["artifacts"].append(
        {
            "name": "junit",
            "paths": ["report.xml"],
            "when": "always",
            "artifact_type": "junit",
            "artifact_format": "gzip",
        }
    )
    payload["artifacts"].append({"paths": ["build.env"], "artifact_type": "dotenv"})
    job = parse_job(payload)
    assert [(u.artifact_type, u.artifact_format) for u in job.uploads] == [
        ("archive", "zip"),
        ("junit", "gzip"),
        ("dotenv", "gzip"),
    ]
    assert job.spec.artifacts.reports == (("junit", ("report.xml",)), ("dotenv", ("build.env",)))


def test_masked_variables_and_aliases(payload: dict) -> None:
    payload["variables"].append({"key": "SECRET", "value": "s3cr3t-value", "masked": True})
    payload["services"][0]["alias"] = "db  pg"
    job = parse_job(payload)
    assert job.spec.variables[-1] == Variable("SECRET", "s3cr3t-value", masked=True)
    assert job.spec.services[0].aliases == ("db", "pg")


def test_unknown_fields_are_a_debug_line(payload: dict, caplog) -> None:
    payload["brand_new_field"] = {"x": 1}
    with caplog.at_level(logging.DEBUG, logger="runner.runnermode.payload"):
        job = parse_job(payload)
    assert job.spec.name == "test-job"
    assert "'brand_new_field' is not used by pyci" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(steps="echo"), "steps: not a list"),
        (lambda p: p["steps"].pop(0), "steps: no `script` step"),
        (lambda p: p["variables"][0].update(value=3), "variables[0].value (CI_REF_NAME)"),
        (lambda p: p["git_info"].pop("repo_url"), "git_info.repo_url"),
        (lambda p: p["dependencies"][0].pop("token"), "dependencies[0].token"),
        (lambda p: p["cache"][0].update(policy="sometimes"), "cache[0].policy"),
        (lambda p: p["runner_info"].update(timeout="soon"), "runner_info.timeout"),
    ],
)
def test_malformed_payload_names_the_field(payload: dict, change, message: str) -> None:
    broken = copy.deepcopy(payload)
    change(broken)
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse_job(broken)
    assert job_identity(broken) == (10, "job-token")  # enough to fail the job on GitLab


def test_no_identity_no_job() -> None:
    assert job_identity([1]) is None
    with pytest.raises(PayloadError, match="no job id and token"):
        parse_job({"steps": []})


def test_registry_credentials_become_docker_auth_config(payload: dict) -> None:
    from runner.runnermode.credentials import with_registry_credentials

    job = parse_job(payload)
    spec = with_registry_credentials(job.spec, job.credentials)
    config = json.loads(spec.variable("DOCKER_AUTH_CONFIG") or "")
    assert config == {
        "auths": {"registry.gitlab.example.com": {"auth": "Z2l0bGFiLWNpLXRva2VuOmpvYi10b2tlbg=="}}
    }
    assert spec.variables[-1].masked
    # the job's own DOCKER_AUTH_CONFIG wins for the same host, and is kept
    own = {
        "auths": {
            "registry.gitlab.example.com": {"auth": "b3duOm93bg=="},
            "other.io": {"auth": "eDp5"},
        }
    }
    payload["variables"].append({"key": "DOCKER_AUTH_CONFIG", "value": json.dumps(own)})
    job = parse_job(payload)
    merged = json.loads(
        with_registry_credentials(job.spec, job.credentials).variable("DOCKER_AUTH_CONFIG") or ""
    )
    assert merged == own
