"""Runner mode against real parts on loopback: the runner API double, a git server that
requires the job token, and a registry with a busybox image. `pyci runner run-single` runs as
a child process, as on a build box; after each test nothing it made may be left (the
container tests' leftover check: mounts, cgroups, netns, links, container processes)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli import isolated_env
from tests.container.conftest import leftovers, snapshot
from tests.fake_gitlab_runner import RUNNER_TOKEN, FakeGitLabRunner, FakeJob
from tests.gitutil import git
from tests.images.imagelib import busybox_image
from tests.images.servers import image_on_a_registry
from tests.runner_mode.git_server import GitServer

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLETS = ("sh", "ls", "cat", "echo", "true", "false", "mkdir", "sleep", "test", "rm", "wc")
PROJECT = "group/demo"


@pytest.fixture(scope="session")
def busybox_ref() -> Iterator[str]:
    with image_on_a_registry(busybox_image(APPLETS), "library/busybox") as ref:
        yield ref


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    before = snapshot()
    yield
    assert leftovers(before) == {}


@dataclass
class Box:
    """The outside world of one test: GitLab, its git server, the project, pyci's dirs."""

    gitlab: FakeGitLabRunner
    git_server: GitServer
    sha: str
    env: dict[str, str]
    tmp: Path
    image: str
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def payload(
        self,
        name: str,
        script: list[str],
        *,
        after_script: list[str] | None = None,
        artifacts: list[dict[str, Any]] | None = None,
        dependencies: list[FakeJob] | None = None,
        variables: list[dict[str, Any]] | None = None,
        timeout: int = 3600,
        image: str | None = None,
    ) -> dict[str, Any]:
        steps = [{"name": "script", "script": script, "timeout": timeout, "when": "on_success"}]
        if after_script:
            steps.append(
                {"name": "after_script", "script": after_script, "timeout": 3600, "when": "always"}
            )
        return {
            "allow_git_fetch": True,
            "job_info": {"name": name, "stage": "test", "project_id": 7, "project_name": "demo"},
            "git_info": {
                "repo_url": "",
                "ref": "main",
                "sha": self.sha,
                "before_sha": "0" * 40,
                "ref_type": "branch",
                "refspecs": ["+refs/heads/main:refs/remotes/origin/main"],
                "depth": 20,
            },
            "runner_info": {"timeout": timeout},
            "variables": variables or [],
            "steps": steps,
            "image": {"name": image} if image else {},
            "services": [],
            "artifacts": artifacts or [],
            "cache": [],
            "credentials": [],
            "dependencies": [
                {
                    "id": dep.id,
                    "name": dep.name,
                    "token": dep.token,
                    "artifacts_file": {"filename": "artifacts.zip", "size": 1},
                }
                for dep in dependencies or []
            ],
            "features": {"trace_sections": True},
        }

    def queue(self, *args: Any, **kwargs: Any) -> FakeJob:
        return self.gitlab.queue_job(
            self.payload(*args, **kwargs),
            repo_url=lambda token: self.git_server.repo_url(PROJECT, token),
        )

    def runner_args(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "runner.cli",
            "runner",
            "run-single",
            "--url",
            self.gitlab.url,
            "--token",
            RUNNER_TOKEN,
            "--name",
            "test-box",
            "--default-image",
            self.image,
            "--check-interval",
            "0.2",
            "--builds-dir",
            str(self.tmp / "builds"),
            "--cache-dir",
            str(self.tmp / "cache"),
            "--network",
            "none",
            *extra,
        ]

    def run(self, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        finished = subprocess.run(
            self.runner_args(*extra),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        # pytest shows this with a failing test: the runner prints a bug's traceback there
        # ("an internal error of pyci" is all a job's trace says of it)
        sys.stderr.write(finished.stderr)
        return finished

    def start(self, *extra: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self.runner_args(*extra),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.started.append(process)
        return process


@pytest.fixture
def box(tmp_path: Path, busybox_ref: str) -> Iterator[Box]:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "hello.txt").write_text("hello from the repository\n")
    (work / "build.sh").write_text("echo built > out/result.txt\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "first")
    sha = git(work, "rev-parse", "HEAD")
    served = tmp_path / "git"
    (served / "group").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(work), str(served / "group" / "demo.git"))
    env = isolated_env(tmp_path, REPO_ROOT)
    with FakeGitLabRunner() as gitlab, GitServer(served, gitlab.job_token_is_valid) as server:
        made = Box(gitlab, server, sha, env, tmp_path, busybox_ref)
        try:
            yield made
        finally:
            for process in made.started:  # a test that failed half-way: end its runner
                if process.poll() is None:
                    process.terminate()
                    process.communicate(timeout=120)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(sig)
    return process.communicate(timeout=120)
