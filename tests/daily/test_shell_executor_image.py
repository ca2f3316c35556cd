"""The shell executor runs jobs on the host: a job's `image:` has no effect, and the job log
says so, once."""

from __future__ import annotations

from tests.cli import run_pyci as pyci
from tests.daily.conftest import make_project

PIPELINE = """
with-image:
  image: python:3.12
  script: [echo ran]
no-image:
  script: [echo ran]
own-image:
  image: {name: "alpine:3.19", entrypoint: [""]}
  script: [echo ran]
"""


def test_the_shell_executor_says_once_that_it_ignores_the_image(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": PIPELINE})
    run = pyci(repo, env, "run", "--plain", "--executor", "shell")
    assert run.returncode == 0, run.stdout + run.stderr

    def notes(job: str) -> list[str]:
        return [
            line
            for line in run.stdout.splitlines()
            if line.startswith(f"[{job}] ") and "image" in line[len(job) + 3 :]
        ]

    assert notes("with-image") == [
        "[with-image] The shell executor ignores image: python:3.12 (runs on this host)"
    ]
    assert notes("own-image") == [
        "[own-image] The shell executor ignores image: alpine:3.19 (runs on this host)"
    ]
    assert notes("no-image") == []
    log = (repo / ".pyci" / "logs" / "with-image.log").read_text()
    assert log.count("ignores image") == 1
