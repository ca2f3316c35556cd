"""`pyci reproduce JOB_URL` through the command line, against the fake GitLab API.

The must-show: a failed job of a scheduled pipeline is reproduced in a container whose image
comes from a loopback registry. pyci checks out the job's commit (the clone's HEAD is a later
one), puts the pipeline's, the group's and the project's variables in place (a masked *file*
variable among them, which never reaches any output, log or report), downloads the artifacts
of the job it needs, and fails the same way the original did (exit code 3).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run_pyci as pyci
from tests.fake_gitlab import FakeGitLab
from tests.gitutil import git
from tests.images.imagelib import busybox_image
from tests.images.servers import image_on_a_registry
from tests.reproduce.project import SECRET, failed_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLETS = ("sh", "cat", "echo", "mkdir", "wc", "test", "true")


@pytest.fixture(scope="module")
def busybox() -> Iterator[tuple[str, str]]:
    """(`127.0.0.1:<port>/library/busybox:v1`, its digest) on a loopback registry."""
    image = busybox_image(APPLETS)
    with image_on_a_registry(image, "library/busybox") as ref:
        yield ref, image.digest


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, gitlab: FakeGitLab) -> dict[str, str]:
    for name in ("home", "run", "builds", "tmp", "config"):
        (tmp_path / name).mkdir()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("GITLAB_TOKEN", "PYCI_GITLAB_URL", "PYCI_REGISTRY_MIRROR")
    }
    return {
        **environment,
        "PYCI_GITLAB_TOKEN": gitlab.token,
        "PYCI_HOME": str(tmp_path / "home"),
        "PYCI_RUN_DIR": str(tmp_path / "run"),
        "PYCI_BUILDS_DIR": str(tmp_path / "builds"),
        "TMPDIR": str(tmp_path / "tmp"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "PYTHONPATH": str(REPO_ROOT),
    }


def job_lines(stdout: str, job: str) -> list[str]:
    prefix = f"[{job}] "
    return [line[len(prefix) :] for line in stdout.splitlines() if line.startswith(prefix)]


def files_holding(root: Path, text: str) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and text.encode() in path.read_bytes()
    ]


def test_a_failed_job_is_reproduced_in_a_container_as_it_failed(tmp_path, env, gitlab, busybox):
    busybox_ref, digest = busybox
    scenario = failed_pipeline(tmp_path, gitlab, busybox_ref)
    # the runner's line for the image it pulled: the same digest as pyci's, so no difference
    original = gitlab.projects["team/demo"].find_job(11)
    assert original is not None
    original[1].trace = (
        f"Using docker image sha256:0123 for {busybox_ref} with digest "
        f"{busybox_ref.rpartition(':')[0]}@{digest} ...\n" + original[1].trace
    )
    head = git(scenario.repo, "rev-parse", "HEAD")
    report = tmp_path / "report.json"
    run = pyci(
        scenario.repo,
        env,
        "reproduce",
        scenario.url,
        "--executor",
        "container",
        "--network",
        "none",
        "--json-report",
        str(report),
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    lines = job_lines(run.stdout, "test")
    # the job ran in the image, at the job's commit, with the original pipeline's facts
    assert any("Using container executor with image " + busybox_ref in line for line in lines)
    assert f"checked out {scenario.failing_sha[:12]} in a temporary worktree" in run.stderr
    assert "source=schedule ref=main pipeline=7" in lines
    # the pipeline's variable, the group's, the project's (scoped to production, protected
    # on the protected main branch)
    assert "group=group-value prod=prod protected=yes nightly=1" in lines
    # the artifacts of `build`, downloaded from the original pipeline
    assert "downloaded the artifacts of build (job 10): 1 files" in run.stderr
    assert "from the CI pipeline" in lines
    # the masked file variable is in place and never shown
    assert f"kubeconfig bytes={len(SECRET)}" in lines
    assert "[MASKED]" in "\n".join(lines)
    # the same failure as the original's
    assert "ERROR: Job failed: exit code 3" in lines
    assert "reproduce: the job failed the same way as the original" in run.stderr
    assert SECRET not in output
    assert files_holding(scenario.repo, SECRET) == []
    assert files_holding(tmp_path / "home", SECRET) == []
    assert SECRET not in report.read_text()
    # the clone is where it was, the temporary worktree gone, its logs kept
    assert git(scenario.repo, "rev-parse", "HEAD") == head
    assert git(scenario.repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert len(git(scenario.repo, "worktree", "list").splitlines()) == 1
    assert list((tmp_path / "tmp").glob("pyci-reproduce-*")) == []
    kept = scenario.repo / ".pyci" / "reproduce" / "11" / "logs"
    assert "exit code 3" in "".join(p.read_text() for p in kept.iterdir())


def test_with_the_shell_executor_and_at_head_no_worktree_is_made(tmp_path, env, gitlab):
    scenario = failed_pipeline(tmp_path, gitlab, None)
    git(scenario.repo, "checkout", "-q", scenario.failing_sha)
    run = pyci(scenario.repo, env, "reproduce", scenario.url, "--executor", "shell")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "temporary worktree" not in run.stderr
    assert "from the CI pipeline" in job_lines(run.stdout, "test")
    assert "reproduce: the job failed the same way as the original" in run.stderr
    assert SECRET not in run.stdout + run.stderr
    assert files_holding(scenario.repo / ".pyci", SECRET) == []


def test_what_differs_is_said(tmp_path, env, gitlab):
    scenario = failed_pipeline(tmp_path, gitlab, None)
    job = gitlab.projects["team/demo"].find_job(11)
    assert job is not None
    job[1].trace = (
        "Using docker image sha256:1234 for alpine:3 with digest alpine@sha256:"
        + "a" * 64
        + "\nERROR: Job failed: exit code 2\n"
    )
    run = pyci(scenario.repo, env, "reproduce", scenario.url, "--executor", "shell")
    assert run.returncode == 1
    assert "reproduce:   - exit code: the original failed with 2, here 3" in run.stderr


def test_without_the_maintainer_role_the_variables_that_could_not_be_read_are_named(
    tmp_path, env, gitlab
):
    scenario = failed_pipeline(tmp_path, gitlab, None)
    gitlab.projects["team/demo"].private = False
    env = {**env, "PYCI_GITLAB_TOKEN": ""}
    run = pyci(scenario.repo, env, "reproduce", scenario.url, "--executor", "shell")
    assert run.returncode == 1, run.stderr
    assert "the project's CI/CD variables could not be read" in run.stderr
    assert "the pipeline's own variables could not be read" in run.stderr
    assert "group= prod= protected= nightly=" in job_lines(run.stdout, "test")
    for name in ("FROM_GROUP", "PROD_ONLY", "ON_MAIN", "NIGHTLY", "KUBECONFIG"):
        line = f"reproduce:   - ${name}: the job uses it, nothing defines it here"
        assert line in run.stderr


def test_a_different_image_digest_and_outcome_are_named():
    from runner.reproduce import OriginalJob, differences

    job = OriginalJob(
        pipeline=None,  # type: ignore[arg-type]
        id=1,
        name="test",
        stage="test",
        status="failed",
        failure_reason="script_failure",
        web_url="",
        exit_code=None,
        image_digest="alpine@sha256:" + "a" * 64,
    )
    found = differences(
        job, exit_code=0, status="success", image_digest="alpine:3@sha256:" + "b" * 64
    )
    assert found == [
        "status: the original failed, here the job passed",
        f"image: the original ran alpine@sha256:{'a' * 64}, here alpine:3@sha256:{'b' * 64}",
    ]
    same = differences(
        job, exit_code=1, status="failed", image_digest="alpine:3@sha256:" + "a" * 64
    )
    assert same == []


def test_a_commit_missing_from_the_clone_is_one_line(tmp_path, env, gitlab):
    scenario = failed_pipeline(tmp_path, gitlab, None)
    gitlab.projects["team/demo"].pipelines[7].sha = "f" * 40
    run = pyci(scenario.repo, env, "reproduce", scenario.url, "--executor", "shell")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "error: commit ffffffffffff is not in this clone: run `git fetch` "
        f"(or `git fetch origin {'f' * 40}`) and try again"
    )
    assert "Traceback" not in run.stderr


def test_a_url_that_is_not_a_job_is_a_usage_error(tmp_path, env, gitlab):
    run = pyci(tmp_path, env, "reproduce", f"{gitlab.url}/team/demo/-/pipelines/7")
    assert run.returncode == 2
    assert "expected a job URL, https://HOST/GROUP/PROJECT/-/jobs/ID" in run.stderr
    unknown = pyci(tmp_path, env, "reproduce", f"{gitlab.url}/team/demo/-/jobs/99")
    assert unknown.returncode == 1
    assert "job 99: not found (or not visible without a token)" in unknown.stderr


def test_a_whole_pipeline_with_pipeline_url(tmp_path, env, gitlab):
    scenario = failed_pipeline(tmp_path, gitlab, None)
    url = f"{gitlab.url}/team/demo/-/pipelines/7"
    run = pyci(scenario.repo, env, "reproduce", "--pipeline", url, "--executor", "shell")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "reproduce: pipeline #7: schedule on main at " in run.stderr
    assert "local" in job_lines(run.stdout, "test")  # build ran here: nothing downloaded
    assert "ERROR: Job failed: exit code 3" in job_lines(run.stdout, "test")
    assert "reproduce: every job ended as in the original" in run.stderr
    assert SECRET not in run.stdout + run.stderr
    gitlab.projects["team/demo"].pipelines[7].jobs[1].status = "success"
    again = pyci(scenario.repo, env, "reproduce", "--pipeline", url, "--executor", "shell")
    assert "reproduce:   - test: success in the original, failed here" in again.stderr


def test_a_job_url_or_a_pipeline_url_one_of_the_two(tmp_path, env, gitlab):
    neither = pyci(tmp_path, env, "reproduce")
    assert neither.returncode == 2
    assert "name a job URL, or a pipeline with --pipeline URL (one of the two)" in neither.stderr
    wrong = pyci(tmp_path, env, "reproduce", "--pipeline", f"{gitlab.url}/team/demo/-/jobs/1")
    assert wrong.returncode == 2
    assert "expected a pipeline URL, https://HOST/GROUP/PROJECT/-/pipelines/ID" in wrong.stderr


MR_PIPELINE = """
show:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - echo "iid=$CI_MERGE_REQUEST_IID source=$CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"
    - echo "target=$CI_MERGE_REQUEST_TARGET_BRANCH_NAME title=$CI_MERGE_REQUEST_TITLE"
    - echo "ref=$CI_COMMIT_REF_NAME branch=${CI_COMMIT_BRANCH:-none} on-feature=$ON_FEATURE"
"""


def test_a_merge_request_pipelines_job_sees_its_merge_request(tmp_path, env, gitlab):
    repo = tmp_path / "mr"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitlab-ci.yml").write_text(MR_PIPELINE)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "mr")
    sha = git(repo, "rev-parse", "HEAD")
    project = gitlab.add_project("team/mr", private=True)
    project.protected_branches = ["main", "feature"]
    project.variables = [{"key": "ON_FEATURE", "value": "protected-yes", "protected": True}]
    project.merge_requests[5] = {
        "id": 905,
        "title": "Fix things",
        "source_branch": "feature",
        "target_branch": "main",
    }
    pipeline = project.add_pipeline(
        9, "refs/merge-requests/5/head", sha, source="merge_request_event"
    )
    project.add_job(pipeline, 90, "show", "test", status="success")
    run = pyci(repo, env, "reproduce", f"{gitlab.url}/team/mr/-/jobs/90", "--executor", "shell")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = job_lines(run.stdout, "show")
    assert "iid=5 source=feature" in lines
    assert "target=main title=Fix things" in lines
    assert "ref=feature branch=none on-feature=protected-yes" in lines
    assert "reproduce: the job ended as the original did (success)" in run.stderr


def test_a_tag_pipelines_job_runs_for_its_tag(tmp_path, env, gitlab):
    repo = tmp_path / "tagged"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitlab-ci.yml").write_text(
        "release:\n  only: [tags]\n  script:\n"
        '    - echo "tag=$CI_COMMIT_TAG branch=${CI_COMMIT_BRANCH:-none} ref=$CI_COMMIT_REF_NAME"\n'
    )
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v1")
    project = gitlab.add_project("team/tagged", private=True)
    pipeline = project.add_pipeline(4, "v1.0", git(repo, "rev-parse", "HEAD"), tag=True)
    project.add_job(pipeline, 40, "release", "test", status="success")
    url = f"{gitlab.url}/team/tagged/-/jobs/40"
    run = pyci(repo, env, "reproduce", url, "--executor", "shell")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tag=v1.0 branch=none ref=v1.0" in job_lines(run.stdout, "release")
