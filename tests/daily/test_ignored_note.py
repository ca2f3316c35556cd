"""The "ignored, no effect locally" note is one short line whatever the number of jobs:
keywords and counts; `--verbose` names the jobs."""

from __future__ import annotations

from tests.cli import run_pyci as pyci
from tests.daily.conftest import make_project


def many_jobs(count: int) -> str:
    jobs = [
        f"job-number-{n}:\n  tags: [docker, linux]\n  interruptible: true\n  script: [echo {n}]\n"
        for n in range(count)
    ]
    return "\n".join(jobs)


def test_the_note_of_a_big_project_is_one_short_line(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": many_jobs(150)})
    run = pyci(repo, env, "validate")
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        "note: ignored, no effect locally: tags (150 jobs), interruptible (150 jobs); "
        "--verbose names the jobs"
    ]


def test_verbose_names_every_job(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": many_jobs(3)})
    run = pyci(repo, env, "list", "--verbose")
    assert run.returncode == 0, run.stderr
    jobs = "job-number-0, job-number-1, job-number-2"
    assert run.stderr.splitlines() == [
        f"note: ignored, no effect locally: tags ({jobs}); interruptible ({jobs})"
    ]
