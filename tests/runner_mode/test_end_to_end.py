"""`pyci runner run-single` end to end: jobs from the runner API double, sources from a git
server that wants the job token, images from a loopback registry, containers for every job."""

from __future__ import annotations

import gzip
import io
import zipfile

from tests.fake_gitlab_runner import trace_checksum
from tests.runner_mode.conftest import Box


def assert_reported(job, state: str, reason: str | None = None) -> str:
    """The job's final PUT matches what the server holds; returns the trace."""
    assert job.final is not None, f"{job.name}: no final update"
    assert job.final["state"] == state, job.trace.decode(errors="replace")
    assert job.final.get("failure_reason") == reason
    assert job.final["checksum"] == trace_checksum(job)
    assert job.final["output"] == {"checksum": trace_checksum(job), "bytesize": len(job.trace)}
    return job.trace.decode()


def test_one_job_from_gitlab(box: Box) -> None:
    job = box.queue("hello", ["cat hello.txt", "echo token=$CI_JOB_TOKEN"])
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "success")
    assert "hello from the repository" in trace
    assert "token=[MASKED]" in trace
    assert job.token not in trace
    assert job.final["exit_code"] == 0
    assert f"job {job.id} (hello): started" in run.stdout
    assert f"job {job.id} (hello): success" in run.stdout
    # the git server saw the job's own token, and nothing else got in
    assert any(r.accepted for r in box.git_server.requests)
    assert all(r.user == "gitlab-ci-token" for r in box.git_server.requests if r.accepted)
    # the token is nowhere on disk: not in the repository's config
    configs = list((box.tmp / "builds").rglob(".git/config"))
    assert configs
    for config in configs:
        assert job.token not in config.read_text()


def test_failing_script_reports_exit_code(box: Box) -> None:
    job = box.queue("fails", ["echo about to fail", "exit 3"])
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "failed", "script_failure")
    assert job.final["exit_code"] == 3
    assert "about to fail" in trace


def test_artifacts_are_uploaded_and_handed_to_a_dependent_job(box: Box) -> None:
    archive = {"paths": ["out/"], "when": "on_success", "artifact_type": "archive"}
    junit = {"paths": ["report.xml"], "artifact_type": "junit", "artifact_format": "gzip"}
    dotenv = {"paths": ["build.env"], "artifact_type": "dotenv", "artifact_format": "gzip"}
    report = '<testsuite name="s" tests="1"><testcase name="t"/></testsuite>'
    build = box.queue(
        "build",
        [
            "mkdir out",
            "sh build.sh",
            "echo VERSION=1.2 > build.env",
            f"echo '{report}' > report.xml",
        ],
        artifacts=[archive, junit, dotenv],
    )
    test = box.queue("test", ["cat out/result.txt"], dependencies=[build])
    run = box.run("--max-builds", "2")
    assert run.returncode == 0, run.stderr
    assert_reported(build, "success")
    kinds = [(u.artifact_type, u.artifact_format) for u in build.uploads]
    assert kinds == [("archive", "zip"), ("junit", "gzip"), ("dotenv", "gzip")]
    with zipfile.ZipFile(io.BytesIO(build.archive() or b"")) as archive_zip:
        assert archive_zip.read("out/result.txt") == b"built\n"
    uploads = {u.artifact_type: u for u in build.uploads}
    assert gzip.decompress(uploads["junit"].data).decode() == report + "\n"
    assert gzip.decompress(uploads["dotenv"].data) == b"VERSION=1.2\n"
    trace = assert_reported(test, "success")
    assert "built" in trace
    # the dependency's artifacts were fetched with the dependency's token
    downloads = box.gitlab.requests_to("GET", f"/jobs/{build.id}/artifacts")
    assert downloads and all(r.headers["job-token"] == build.token for r in downloads)


def test_twenty_jobs_two_at_a_time_with_artifacts_handed_on(box: Box) -> None:
    archive = {"paths": ["out/"], "when": "on_success", "artifact_type": "archive"}
    builds = [
        box.queue(
            f"build-{i}", ["mkdir out", f"echo payload-{i} > out/result.txt"], artifacts=[archive]
        )
        for i in range(10)
    ]
    tests = [
        box.queue(
            f"test-{i}",
            ["cat out/result.txt", f"test $(cat out/result.txt) = payload-{i}"],
            dependencies=[build],
        )
        for i, build in enumerate(builds)
    ]
    run = box.run("--max-builds", "20", "--concurrent", "2", timeout=600)
    assert run.returncode == 0, run.stderr
    for i, (build, test) in enumerate(zip(builds, tests, strict=True)):
        assert_reported(build, "success")
        assert [u.artifact_type for u in build.uploads] == ["archive"]
        trace = assert_reported(test, "success")
        assert f"payload-{i}" in trace
        assert test.final["exit_code"] == 0
    assert run.stdout.count(": started") == 20
    # two at a time: some job started while another was running
    lines = run.stdout.splitlines()
    running, most = 0, 0
    for line in lines:
        running += 1 if line.endswith(": started") else -1
        most = max(most, running)
    assert most == 2
