"""The runner API client against the double: job requests and artifact transfers."""

from __future__ import annotations

import http.server
import json

from runner.gitlab.runner_api import RunnerAPI
from runner.gitlab.server import Server
from tests.fake_gitlab_runner import FakeGitLabRunner, Upload
from tests.loopback import LoopbackHTTP


class ObjectStorage:
    """Another origin serving `/<name>` from `objects`, recording each request's headers."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.headers: list[dict[str, str]] = []
        storage = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                storage.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = storage.objects.get(self.path, b"")
                self.send_response(200 if self.path in storage.objects else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._http = LoopbackHTTP(Handler)
        # "localhost", not 127.0.0.1: another origin than the fake GitLab's
        self.url = f"http://localhost:{self._http.port}"

    def __enter__(self) -> ObjectStorage:
        self._http.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.stop()


def queue_done_job(gitlab: FakeGitLabRunner, data: bytes):
    job = gitlab.queue_job({"job_info": {"name": "build"}, "git_info": {"repo_url": "x"}})
    job.state = "success"
    job.uploads.append(Upload("archive", "zip", None, "artifacts.zip", data))
    return job


def test_artifacts_download_follows_a_redirect_without_the_token() -> None:
    with FakeGitLabRunner() as gitlab:
        job = queue_done_job(gitlab, b"zip bytes")
        with ObjectStorage({f"/{job.id}.zip": b"zip bytes"}) as storage:
            gitlab.artifacts_storage = storage.url
            with RunnerAPI(Server(gitlab.url, gitlab.runner_token)) as api:
                assert api.download_artifacts(job.id, job.token) == b"zip bytes"
            (sent,) = storage.headers
            assert "job-token" not in sent
            assert job.token not in str(sent)
        (asked,) = gitlab.requests_to("GET", f"/jobs/{job.id}/artifacts")
        assert asked.headers["job-token"] == job.token


def test_a_job_without_artifacts_downloads_none() -> None:
    with FakeGitLabRunner() as gitlab:
        job = queue_done_job(gitlab, b"")
        job.uploads.clear()
        with RunnerAPI(Server(gitlab.url, gitlab.runner_token)) as api:
            assert api.download_artifacts(job.id, job.token) is None


def test_job_request_sends_info_and_echoes_last_update() -> None:
    with FakeGitLabRunner() as gitlab:
        gitlab.last_update = "abc123"
        with RunnerAPI(Server(gitlab.url, gitlab.runner_token)) as api:
            info = {"name": "box", "features": {"cancelable": True}}
            empty = api.request_job(info, None)
            assert (empty.status, empty.job, empty.last_update) == (204, None, "abc123")
            job = gitlab.queue_job({"job_info": {"name": "j"}, "git_info": {"repo_url": "x"}})
            got = api.request_job(info, empty.last_update)
            assert got.status == 201
            assert got.job is not None and got.job["id"] == job.id
        bodies = [json.loads(r.body) for r in gitlab.requests_to("POST", "/jobs/request")]
        assert bodies[0] == {"token": gitlab.runner_token, "info": info}
        assert bodies[1]["last_update"] == "abc123"
