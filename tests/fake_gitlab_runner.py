"""A contract double of GitLab's runner API on loopback, beside the REST double it extends.

Written from GitLab's runner API (lib/api/ci/runner.rb, doc/api/runners.md) and gitlab-runner's
client (network/gitlab.go, network/trace.go): `POST /runners/verify`, `POST /runners`,
`DELETE /runners`, `POST /jobs/request` (201 with a payload, 204 with `X-GitLab-Last-Update`,
403 for a bad token), `PATCH /jobs/:id/trace` (`Content-Range` checked against what it holds:
202 with `Range: 0-<size>`, 416 on a mismatch, `Job-Status`, `X-GitLab-Trace-Update-Interval`),
`PUT /jobs/:id` (the final state, checksum and size), `POST/GET /jobs/:id/artifacts`.

Every request is recorded with its body. Faults are injected per endpoint as a queue of
answers taken before the normal one: a status (`500`, `202`, `409`, ...), `"drop"` (the
connection is closed without an answer) or `"lose"` (for the trace: the server forgets its
last bytes, so the runner's next patch gets a 416). `cancel(job_id)` makes the job
`canceling`, as a user pressing Cancel does.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fake_gitlab import FakeGitLab, _handler

RUNNER_TOKEN = "glrt-fake-runner-token-0123456789"
REGISTRATION_TOKEN = "GR1348941fake-registration-token"
TRACE_INTERVAL = "1"  # X-GitLab-Trace-Update-Interval the double asks for


@dataclass(frozen=True)
class RunnerRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Upload:
    artifact_type: str
    artifact_format: str
    expire_in: str | None
    filename: str
    data: bytes


@dataclass
class FakeJob:
    id: int
    token: str
    payload: dict[str, Any]
    state: str = "pending"  # pending, running, canceling, canceled, success, failed
    trace: bytearray = field(default_factory=bytearray)
    final: dict[str, Any] | None = None  # the accepted PUT's body
    updates: list[dict[str, Any]] = field(default_factory=list)  # every PUT's body
    uploads: list[Upload] = field(default_factory=list)
    touches: int = 0  # `PUT` with `state: running` (keep-alives)
    started_at: float = 0.0  # time.monotonic() of the 201 that handed it out
    finished_at: float = 0.0  # and of the accepted final update
    started: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.payload["job_info"]["name"]

    def archive(self) -> bytes | None:
        return next((u.data for u in self.uploads if u.artifact_type == "archive"), None)


class FakeGitLabRunner(FakeGitLab):
    """`with FakeGitLabRunner() as gitlab:` answers the runner API (and the REST one)."""

    def __init__(self, runner_token: str = RUNNER_TOKEN) -> None:
        super().__init__()
        self.runner_token = runner_token
        self.runner_requests: list[RunnerRequest] = []
        self.jobs: dict[int, FakeJob] = {}
        self.faults: dict[str, list[object]] = {}  # "request", "trace", "update", "artifacts"
        self.registered: list[dict[str, Any]] = []
        self.last_update = "1"
        # where artifact downloads are redirected (object storage on another origin), if set
        self.artifacts_storage: str | None = None
        self._next_id = 100
        self._jobs_lock = threading.Lock()
        self._changed = threading.Condition(self._jobs_lock)
        self.answers: list[tuple[str, str, int | str]] = []  # method, path, status
        self._http.server.RequestHandlerClass = _runner_handler(self)

    # --- the jobs -----------------------------------------------------------------------------

    def queue_job(
        self, payload: dict[str, Any], repo_url: Callable[[str], str] | None = None
    ) -> FakeJob:
        """Queue a job; its id and token are set here, and `repo_url(token)` gives its
        `git_info.repo_url` (GitLab puts the job's token in it)."""
        with self._jobs_lock:
            self._next_id += 1
            job_id = self._next_id
            token = f"glcbt-job-{job_id}-secret-token"
            payload = {**payload, "id": job_id, "token": token}
            if repo_url is not None:
                payload["git_info"] = {**payload["git_info"], "repo_url": repo_url(token)}
            payload["variables"] = [
                *payload.get("variables", []),
                {"key": "CI_JOB_TOKEN", "value": token, "public": False, "masked": True},
                {"key": "CI_JOB_ID", "value": str(job_id), "public": True},
            ]
            job = FakeJob(job_id, token, payload)
            self.jobs[job_id] = job
            return job

    def job_token_is_valid(self, token: str) -> bool:
        """What GitLab checks for a CI job's git access: the token of a running job."""
        with self._jobs_lock:
            return any(
                j.token == token and j.state in ("running", "canceling") for j in self.jobs.values()
            )

    def cancel(self, job_id: int) -> None:
        with self._jobs_lock:
            job = self.jobs[job_id]
            if job.state == "running":
                job.state = "canceling"

    def inject(self, endpoint: str, *answers: object) -> None:
        with self._jobs_lock:
            self.faults.setdefault(endpoint, []).extend(answers)

    def requests_to(self, method: str, suffix: str) -> list[RunnerRequest]:
        with self._jobs_lock:
            return [
                r for r in self.runner_requests if r.method == method and r.path.endswith(suffix)
            ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        """Block until `predicate()` (checked after every runner API answer) holds."""
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), "the runner never got there"

    def record_answer(self, request: RunnerRequest, status: int | str) -> None:
        with self._changed:
            self.answers.append((request.method, request.path.split("?")[0], status))
            self._changed.notify_all()

    def answered(self, method: str, suffix: str, status: int | str) -> bool:
        """Whether a request (`method`, path ending with `suffix`) got `status` (unlocked:
        for `wait_for` predicates, which run with the lock held)."""
        return any(m == method and p.endswith(suffix) and s == status for m, p, s in self.answers)

    def wait_finished(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for job in list(self.jobs.values()):
            assert job.finished.wait(max(0.0, deadline - time.monotonic())), job.name

    # --- answers ------------------------------------------------------------------------------

    def runner_answer(self, request: RunnerRequest) -> tuple[int, dict[str, str], bytes] | None:
        """The runner API's answer, or None when the request is for the REST double. The
        string "drop" as status closes the connection."""
        parts = request.path.split("?")[0].strip("/").split("/")
        if parts[:2] != ["api", "v4"] or len(parts) < 3 or parts[2] not in ("runners", "jobs"):
            return None
        with self._jobs_lock:
            self.runner_requests.append(request)
        rest = parts[2:]
        if rest == ["runners", "verify"] and request.method == "POST":
            return self._verify(request)
        if rest == ["runners"] and request.method in ("POST", "DELETE"):
            return self._runners(request)
        if rest == ["jobs", "request"] and request.method == "POST":
            return self._fault("request") or self._request_job(request)
        if len(rest) >= 2 and rest[1].isdigit():
            job = self.jobs.get(int(rest[1]))
            if job is None:
                return _json(404, {"message": "404 Not Found"})
            if request.headers.get("job-token") != job.token:
                return _json(403, {"message": "403 Forbidden"})
            tail, method = rest[2:], request.method
            if tail == ["trace"] and method == "PATCH":
                return self._fault("trace", job) or self._trace(job, request)
            if tail == [] and method == "PUT":
                if json.loads(request.body or b"{}").get("state") == "running":
                    return self._update(job, request)  # faults are for the final update
                return self._fault("update") or self._update(job, request)
            if tail == ["artifacts"] and method == "POST":
                return self._fault("artifacts") or self._upload(job, request)
            if tail == ["artifacts"] and method == "GET":
                archive = job.archive()
                if archive is None:
                    return _json(404, {"message": "404 Not Found"})
                if self.artifacts_storage:
                    return 302, {"Location": f"{self.artifacts_storage}/{job.id}.zip"}, b""
                return 200, {"Content-Type": "application/zip"}, archive
        return _json(404, {"error": "404 Not Found"})

    def _fault(self, endpoint: str, job: FakeJob | None = None):
        with self._jobs_lock:
            queue = self.faults.get(endpoint)
            if not queue:
                return None
            fault = queue.pop(0)
        if fault == "drop":
            return "drop", {}, b""
        if fault == "lose" and job is not None:
            with self._jobs_lock:
                del job.trace[len(job.trace) // 2 :]  # the server lost what it last took
            return None
        status = int(fault)  # type: ignore[call-overload]
        headers = {"X-GitLab-Trace-Update-Interval": TRACE_INTERVAL}
        return status, headers, b""

    def _verify(self, request: RunnerRequest):
        body = json.loads(request.body or b"{}")
        if body.get("token") != self.runner_token:
            return _json(403, {"message": "403 Forbidden"})
        return _json(200, {"id": 1, "token": self.runner_token, "token_expires_at": None})

    def _runners(self, request: RunnerRequest):
        body = json.loads(request.body or b"{}")
        if request.method == "DELETE":
            if body.get("token") != self.runner_token:
                return _json(403, {"message": "403 Forbidden"})
            return 204, {}, b""
        if body.get("token") != REGISTRATION_TOKEN:
            return _json(403, {"message": "403 Forbidden"})
        self.registered.append(body)
        return _json(201, {"id": 2, "token": self.runner_token, "token_expires_at": None})

    def _request_job(self, request: RunnerRequest):
        body = json.loads(request.body or b"{}")
        if body.get("token") != self.runner_token:
            return _json(403, {"message": "403 Forbidden"})
        with self._jobs_lock:
            job = next((j for j in self.jobs.values() if self._ready(j)), None)
            if job is not None:
                job.state = "running"
                job.started_at = time.monotonic()
        if job is None:
            return 204, {"X-GitLab-Last-Update": self.last_update}, b""
        job.started.set()
        return _json(201, job.payload)

    def _ready(self, job: FakeJob) -> bool:
        """Pending, and (as GitLab's stages and needs ensure) its dependencies succeeded."""
        needed = [self.jobs[d["id"]] for d in job.payload.get("dependencies", [])]
        return job.state == "pending" and all(d.state == "success" for d in needed)

    def _trace(self, job: FakeJob, request: RunnerRequest):
        with self._jobs_lock:
            size = len(job.trace)
            if job.state not in ("running", "canceling"):
                return _json(403, {"message": "403 Forbidden - Job is not running"})
            start, _, end = request.headers.get("content-range", "").partition("-")
            if not start.isdigit() or int(start) != size:
                return 416, {"Range": f"0-{size}"}, b""
            if not end.isdigit() or int(end) != int(start) + len(request.body) - 1:
                return _json(400, {"message": "400 Bad Request - Content-Range"})
            job.trace += request.body
            size = len(job.trace)
            status = job.state
        headers = {
            "Range": f"0-{size}",
            "Job-Status": status,
            "X-GitLab-Trace-Update-Interval": TRACE_INTERVAL,
        }
        return 202, headers, b""

    def _update(self, job: FakeJob, request: RunnerRequest):
        body = json.loads(request.body)
        if body.get("state") == "running":  # a keep-alive: tells the runner of a cancel
            with self._jobs_lock:
                job.touches += 1
                status = job.state
            if status not in ("running", "canceling"):
                return _json(403, {"message": "403 Forbidden - Job is not running"})
            headers = {"Job-Status": status, "X-GitLab-Trace-Update-Interval": TRACE_INTERVAL}
            return 200, headers, b"{}"
        with self._jobs_lock:
            job.updates.append(body)
            if job.state not in ("running", "canceling"):
                return _json(403, {"message": "403 Forbidden - Job is not running"})
            job.final = body
            job.finished_at = time.monotonic()
            job.state = "canceled" if job.state == "canceling" else body["state"]
        job.finished.set()
        return _json(200, {})

    def _upload(self, job: FakeJob, request: RunnerRequest):
        query = dict(
            pair.split("=", 1) for pair in request.path.partition("?")[2].split("&") if pair
        )
        filename, data = _multipart_file(request)
        with self._jobs_lock:
            job.uploads.append(
                Upload(
                    query.get("artifact_type", "archive"),
                    query.get("artifact_format", "zip"),
                    query.get("expire_in"),
                    filename,
                    data,
                )
            )
        return _json(201, {})


def trace_checksum(job: FakeJob) -> str:
    return f"crc32:{zlib.crc32(bytes(job.trace)) & 0xFFFFFFFF:08x}"


def _multipart_file(request: RunnerRequest) -> tuple[str, bytes]:
    content_type = request.headers.get("content-type", "")
    boundary = content_type.partition("boundary=")[2].strip('"').encode()
    part = request.body.split(b"--" + boundary)[1]
    head, _, data = part.partition(b"\r\n\r\n")
    filename = head.decode().partition('filename="')[2].partition('"')[0]
    return filename, data.removesuffix(b"\r\n")


def _json(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _runner_handler(gitlab: FakeGitLabRunner):
    parent = _handler(gitlab)

    class Handler(parent):  # type: ignore[misc, valid-type]
        def _answer_runner(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RunnerRequest(
                method, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            answer = gitlab.runner_answer(request)
            if answer is None:
                if method == "GET":
                    return super().do_GET()
                answer = _json(404, {"error": "404 Not Found"})
            status, headers, payload = answer
            gitlab.record_answer(request, status)
            if status == "drop":
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(int(status))
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer_runner("GET")

        def do_POST(self) -> None:
            self._answer_runner("POST")

        def do_PUT(self) -> None:
            self._answer_runner("PUT")

        def do_PATCH(self) -> None:
            self._answer_runner("PATCH")

        def do_DELETE(self) -> None:
            self._answer_runner("DELETE")

    return Handler
