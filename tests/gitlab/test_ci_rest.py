"""The REST calls `--gitlab-variables` and `pyci reproduce` make, against the fake GitLab:
pages of variables, a job's pipeline, and an artifacts download that follows a redirect to
object storage on another origin without taking the token along."""

from __future__ import annotations

import io

import pytest

from runner.gitlab.client import GitLabClient
from runner.gitlab.errors import GitLabError
from runner.gitlab.server import Server
from tests.fake_gitlab import FakeGitLab


@pytest.fixture
def gitlab():
    with FakeGitLab() as server:
        project = server.add_project("team/app", private=True)
        pipeline = project.add_pipeline(3, "main", "a" * 40, source="web")
        project.add_job(pipeline, 30, "build", "build", artifacts=b"PK-archive-bytes")
        project.add_job(pipeline, 31, "test", "test", status="failed")
        project.variables = [{"key": f"V{n}", "value": str(n)} for n in range(250)]
        yield server


def test_variables_are_read_page_by_page(gitlab):
    with GitLabClient(Server(gitlab.url, gitlab.token)) as client:
        variables = client.project_variables("team/app")
    assert [v["key"] for v in variables] == [f"V{n}" for n in range(250)]
    pages = [r.query["page"] for r in gitlab.api_requests() if r.path.endswith("/variables")]
    assert pages == ["1", "2", "3"]


def test_a_job_and_its_pipeline(gitlab):
    with GitLabClient(Server(gitlab.url, gitlab.token)) as client:
        job = client.job("team/app", 31)
        pipeline = client.pipeline("team/app", job["pipeline"]["id"])
        jobs = client.pipeline_jobs("team/app", 3)
    assert (job["name"], job["status"], job["ref"]) == ("test", "failed", "main")
    assert (pipeline["source"], pipeline["sha"]) == ("web", "a" * 40)
    assert [j["name"] for j in jobs] == ["test", "build"]


def test_variables_need_the_token(gitlab):
    gitlab.projects["team/app"].private = False
    with GitLabClient(Server(gitlab.url)) as client, pytest.raises(GitLabError) as caught:
        client.project_variables("team/app")
    assert caught.value.status == 401
    assert str(caught.value) == (
        "project `team/app` CI/CD variables: the token is missing or invalid "
        "(set PYCI_GITLAB_TOKEN)"
    )


def test_an_artifacts_redirect_to_another_origin_drops_the_token(gitlab):
    with FakeGitLab() as storage:
        storage.static["/bucket/artifacts.zip"] = b"PK-from-object-storage"
        path = "/api/v4/projects/team%2Fapp/jobs/30/artifacts"
        gitlab.redirects[path] = f"{storage.url}/bucket/artifacts.zip"
        sink = io.BytesIO()
        with GitLabClient(Server(gitlab.url, gitlab.token)) as client:
            client.download_job_artifacts("team/app", 30, sink)
        assert sink.getvalue() == b"PK-from-object-storage"
        (stored,) = storage.requests
        assert "private-token" not in stored.headers
    first = [r for r in gitlab.requests if r.path == path]
    assert first[0].headers["private-token"] == gitlab.token
