"""`pyci run --executor container` pulling job images the way gitlab-runner does: credentials
from the job's DOCKER_AUTH_CONFIG and ~/.docker/config.json (in that order), GitLab's list form
of `pull_policy`, and Docker Hub mirrors.

Registries run on loopback: one with htpasswd (Basic) auth holding a private busybox image,
one without auth playing a Docker Hub mirror.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import run_pyci as pyci
from tests.container.test_container_cli import APPLETS, CONFIG, REPO_ROOT, job_lines, make_project
from tests.images.imagelib import Pusher, busybox_image
from tests.images.servers import RegistryServer

USER, PASSWORD = "alice", "wonderland"


@dataclass
class Registries:
    private: RegistryServer  # htpasswd auth
    mirror: RegistryServer  # no auth

    @property
    def private_ref(self) -> str:
        return f"{self.private.host}/private/busybox:v1"


@pytest.fixture(scope="module")
def registries() -> Iterator[Registries]:
    root = Path(tempfile.mkdtemp(prefix="pyci-auth-registry-"))
    started: list[RegistryServer] = []
    try:
        line = subprocess.run(
            ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
        ).stdout
        (root / "htpasswd").write_text(line)
        auth = f"  htpasswd:\n    realm: pyci-test\n    path: {root / 'htpasswd'}\n"
        for name, section in (("private", auth), ("mirror", "")):
            (root / name).mkdir()
            started.append(RegistryServer(root / name, section))
        for server in started:
            server.wait_ready()
        private, mirror = started
        image = busybox_image(APPLETS, CONFIG)
        for server, repository, user in ((private, "private/busybox", USER),
                                         (mirror, "library/busybox", "")):  # fmt: skip
            pusher = Pusher(server.url, user, PASSWORD if user else "")
            try:
                pusher.push_image(repository, "v1", image)
            finally:
                pusher.close()
        yield Registries(private, mirror)
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def auth_config(host: str, password: str = PASSWORD) -> str:
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": token}}})


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """pyci's environment: its own image store, run, builds and temp dirs, and a HOME of its
    own (no docker config unless a test writes one)."""
    for name in ("home", "run", "builds", "tmp", "user-home"):
        (tmp_path / name).mkdir()
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DOCKER_CONFIG", "DOCKER_AUTH_CONFIG")
    }
    return {
        **clean,
        "HOME": str(tmp_path / "user-home"),
        "PYCI_HOME": str(tmp_path / "home"),
        "PYCI_RUN_DIR": str(tmp_path / "run"),
        "PYCI_BUILDS_DIR": str(tmp_path / "builds"),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONPATH": str(REPO_ROOT),
    }


def pipeline(image: str, variables: dict[str, str] | None = None, policy: str = "") -> str:
    lines = []
    if variables:
        lines.append("variables:")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in variables.items()]
    lines += ["job:", "  image:", f"    name: {image}"]
    if policy:
        lines.append(f"    pull_policy: {policy}")
    lines += ["  script:", '    - echo "pulled $FROM_IMAGE"']
    return "\n".join(lines) + "\n"


def run_job(
    repo: Path, env: dict[str, str], *flags: str
) -> tuple[subprocess.CompletedProcess, dict]:
    report = repo.parent / "report.json"
    run = pyci(repo, env, "run", "--executor", "container", "--plain", "--network", "none",
               "--json-report", str(report), *flags)  # fmt: skip
    job = json.loads(report.read_text())["jobs"][0] if report.exists() else {}
    return run, job


def test_a_job_with_docker_auth_config_pulls_a_private_image(tmp_path, user_env, registries):
    variables = {"DOCKER_AUTH_CONFIG": auth_config(registries.private.host)}
    repo = make_project(tmp_path, pipeline(registries.private_ref, variables))
    run, _job = run_job(repo, user_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pulled busybox" in job_lines(run.stdout, "job")


def test_without_credentials_the_job_fails_with_image_pull_failure(tmp_path, user_env, registries):
    repo = make_project(tmp_path, pipeline(registries.private_ref))
    run, job = run_job(repo, user_env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert job["status"] == "failed" and job["failure_reason"] == "image_pull_failure"
    message = job["message"]
    assert "\n" not in message and registries.private_ref in message
    assert "401" in message or "authentication" in message, message
    assert "pulled busybox" not in run.stdout


def test_the_users_docker_config_is_used_when_the_job_has_none(tmp_path, user_env, registries):
    docker_dir = Path(user_env["HOME"]) / ".docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(auth_config(registries.private.host))
    repo = make_project(tmp_path, pipeline(registries.private_ref))
    run, _job = run_job(repo, user_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pulled busybox" in job_lines(run.stdout, "job")


def test_the_jobs_docker_auth_config_comes_before_the_users_config(tmp_path, user_env, registries):
    # gitlab-runner: DOCKER_AUTH_CONFIG's entry for a registry wins over ~/.docker/config.json's
    docker_dir = Path(user_env["HOME"]) / ".docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(auth_config(registries.private.host))
    variables = {"DOCKER_AUTH_CONFIG": auth_config(registries.private.host, "wrong")}
    repo = make_project(tmp_path, pipeline(registries.private_ref, variables))
    run, job = run_job(repo, user_env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert job["failure_reason"] == "image_pull_failure"


def test_a_list_pull_policy_falls_back_to_the_cached_image(tmp_path, user_env, registries):
    variables = {"DOCKER_AUTH_CONFIG": auth_config(registries.private.host)}
    repo = make_project(tmp_path, pipeline(registries.private_ref, variables))
    first, _job = run_job(repo, user_env)  # fills the image store
    assert first.returncode == 0, first.stdout + first.stderr

    # no credentials now: `always` is refused by the registry, `if-not-present` finds the cache
    (repo / ".gitlab-ci.yml").write_text(
        pipeline(registries.private_ref, policy="[always, if-not-present]")
    )
    run, _job = run_job(repo, user_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pulled busybox" in job_lines(run.stdout, "job")

    # the first policy alone fails: the list really is tried in order
    (repo / ".gitlab-ci.yml").write_text(pipeline(registries.private_ref, policy="[always]"))
    run, job = run_job(repo, user_env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert job["failure_reason"] == "image_pull_failure"


def test_a_list_pull_policy_tries_the_next_after_never(tmp_path, user_env, registries):
    variables = {"DOCKER_AUTH_CONFIG": auth_config(registries.private.host)}
    image_pipeline = pipeline(registries.private_ref, variables, policy="[never, if-not-present]")
    repo = make_project(tmp_path, image_pipeline)
    run, _job = run_job(repo, user_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pulled busybox" in job_lines(run.stdout, "job")


def test_a_docker_hub_image_comes_from_the_registry_mirror(tmp_path, user_env, registries):
    repo = make_project(tmp_path, pipeline("busybox:v1"))
    run, _job = run_job(repo, user_env, "--registry-mirror", registries.mirror.url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pulled busybox" in job_lines(run.stdout, "job")
