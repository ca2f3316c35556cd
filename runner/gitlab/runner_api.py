"""GitLab's runner API: what a build box says to its coordinator, over the one GitLab client.

The conversation (GitLab's lib/api/ci/runner.rb, gitlab-runner's network/gitlab.go):
- `POST /runners/verify` (an authentication token) or `POST /runners` (a legacy registration
  token) register; `DELETE /runners` unregisters;
- `POST /jobs/request` asks for a job: 201 with the job's payload, 204 with none (its
  `X-GitLab-Last-Update` is echoed on the next request so GitLab can answer quickly);
- `PATCH /jobs/:id/trace` appends to the job's log, `Content-Range: <start>-<end>` (inclusive);
  202 with `Range: 0-<size>` is what the server now holds, 416 says its size differs (resend
  from there), `Job-Status` tells of a cancel, `X-GitLab-Trace-Update-Interval` how often to send;
- `PUT /jobs/:id` reports the end (200 accepted; 202: not yet, the trace is still being
  checked: ask again later);
- `POST /jobs/:id/artifacts` uploads an archive, `GET /jobs/:id/artifacts` downloads one.
Job endpoints carry the job's token in `JOB-TOKEN`; the redirects of a download (to object
storage) are followed without it (client.py's `request`). Statuses are returned as data here,
not raised: each one means something different to the caller.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from runner.gitlab.client import GitLabClient
from runner.gitlab.errors import GitLabError
from runner.gitlab.server import Server

ARTIFACT_LIMIT = 1024 * 1024 * 1024  # what we accept to download (GitLab's default max: 100 MB)


@dataclass(frozen=True)
class JobRequestAnswer:
    """`POST /jobs/request`: `job` is the payload of a 201; `last_update` the 204's header."""

    status: int
    job: dict[str, Any] | None = None
    last_update: str | None = None


@dataclass(frozen=True)
class TraceAnswer:
    """`PATCH /jobs/:id/trace`: `remote_size` is what the server holds (from `Range`)."""

    status: int
    remote_size: int | None = None
    job_status: str | None = None  # running, canceling, canceled, ...
    update_interval: float | None = None


@dataclass(frozen=True)
class UpdateAnswer:
    """`PUT /jobs/:id`: 200 accepted; 202 try again later; 403/404 the job is gone."""

    status: int
    job_status: str | None = None
    update_interval: float | None = None


class RunnerAPI:
    """The runner's calls against one server; `server.token` is the runner's token."""

    def __init__(self, server: Server, *, timeout: float = 30.0) -> None:
        self.server = server
        self._client = GitLabClient(server, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RunnerAPI:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the runner itself ----------------------------------------------------------------

    def verify(self, system_id: str) -> dict[str, Any]:
        """`POST /runners/verify`: whether the (authentication) token is valid."""
        answer = self._post_json(
            "/runners/verify", {"token": self._token, "system_id": system_id}, what="verify"
        )
        self._expect(answer, (200, 201), "verify the runner token")
        return _json_object(answer.content, "verify the runner token")

    def register(self, registration_token: str, info: dict[str, Any], **fields: Any) -> str:
        """`POST /runners` with a legacy registration token: the new runner's token."""
        body = {"token": registration_token, "info": info, **fields}
        answer = self._post_json("/runners", body, what="register")
        self._expect(answer, (201,), "register the runner")
        token = _json_object(answer.content, "register the runner").get("token")
        if not isinstance(token, str) or not token:
            raise GitLabError("register the runner: the server's answer holds no token")
        return token

    def unregister(self) -> None:
        """`DELETE /runners`: forget this runner (204)."""
        answer = self._client.request(
            "DELETE",
            self.server.api + "/runners",
            None,
            {},
            what="unregister",
            content=json.dumps({"token": self._token}).encode(),
            headers={"Content-Type": "application/json"},
        )
        self._expect(answer, (200, 204), "unregister the runner")

    # --- jobs -----------------------------------------------------------------------------

    def request_job(self, info: dict[str, Any], last_update: str | None) -> JobRequestAnswer:
        body: dict[str, Any] = {"token": self._token, "info": info}
        if last_update:
            body["last_update"] = last_update
        answer = self._post_json("/jobs/request", body, what="request a job")
        if answer.status == 201:
            try:
                payload = json.loads(answer.content)
            except ValueError:
                payload = None
            # a payload that is not an object is passed on as such: the caller fails it
            return JobRequestAnswer(201, payload if isinstance(payload, dict) else {})
        return JobRequestAnswer(answer.status, None, answer.headers.get("x-gitlab-last-update"))

    def patch_trace(self, job_id: int, job_token: str, offset: int, data: bytes) -> TraceAnswer:
        headers = {
            "Content-Type": "text/plain",
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        }
        answer = self._client.request(
            "PATCH",
            f"{self.server.api}/jobs/{job_id}/trace",
            None,
            {"JOB-TOKEN": job_token},
            what=f"send the trace of job {job_id}",
            content=data,
            headers=headers,
        )
        return TraceAnswer(
            answer.status,
            _range_end(answer.headers.get("range")),
            answer.headers.get("job-status"),
            _seconds(answer.headers.get("x-gitlab-trace-update-interval")),
        )

    def update_job(self, job_id: int, job_token: str, body: dict[str, Any]) -> UpdateAnswer:
        answer = self._client.request(
            "PUT",
            f"{self.server.api}/jobs/{job_id}",
            None,
            {"JOB-TOKEN": job_token},
            what=f"update job {job_id}",
            content=json.dumps({"token": job_token, **body}).encode(),
            headers={"Content-Type": "application/json"},
        )
        return UpdateAnswer(
            answer.status,
            answer.headers.get("job-status"),
            _seconds(answer.headers.get("x-gitlab-trace-update-interval")),
        )

    def upload_artifacts(
        self,
        job_id: int,
        job_token: str,
        filename: str,
        data: bytes,
        *,
        artifact_type: str,
        artifact_format: str,
        expire_in: str | None,
    ) -> None:
        """`POST /jobs/:id/artifacts` as multipart `file` (what GitLab's Workhorse takes)."""
        boundary = uuid.uuid4().hex
        quoted = filename.replace("\\", "_").replace('"', "_")
        body = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body += data + f"\r\n--{boundary}--\r\n".encode()
        params = {"artifact_type": artifact_type, "artifact_format": artifact_format}
        if expire_in:
            params["expire_in"] = expire_in
        what = f"upload the {artifact_type} artifacts of job {job_id}"
        answer = self._client.request(
            "POST",
            f"{self.server.api}/jobs/{job_id}/artifacts",
            params,
            {"JOB-TOKEN": job_token},
            what=what,
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        self._expect(answer, (200, 201), what)

    def download_artifacts(self, job_id: int, job_token: str) -> bytes | None:
        """`GET /jobs/:id/artifacts` with the dependency's own token; None: it has none."""
        what = f"download the artifacts of job {job_id}"
        answer = self._client.request(
            "GET",
            f"{self.server.api}/jobs/{job_id}/artifacts",
            None,
            {"JOB-TOKEN": job_token},
            what=what,
            limit=ARTIFACT_LIMIT,
        )
        if answer.status == 404:
            return None
        self._expect(answer, (200,), what)
        return answer.content

    # --- plumbing -------------------------------------------------------------------------

    @property
    def _token(self) -> str:
        return self.server.token or ""

    def _post_json(self, path: str, body: dict[str, Any], *, what: str):
        return self._client.request(
            "POST",
            self.server.api + path,
            None,
            {},
            what=what,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    @staticmethod
    def _expect(answer, statuses: tuple[int, ...], what: str) -> None:
        if answer.status in statuses:
            return
        detail = {401: "the token is invalid", 403: "forbidden (the token is invalid?)"}.get(
            answer.status, f"HTTP {answer.status}"
        )
        raise GitLabError(f"{what}: {detail}", answer.status)


def _json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise GitLabError(f"{what}: the server's answer is not JSON") from exc
    if not isinstance(data, dict):
        raise GitLabError(f"{what}: the server's answer is not an object")
    return data


def _range_end(header: str | None) -> int | None:
    """`Range: 0-<size>` as GitLab writes it: the size the server holds."""
    if not header:
        return None
    _, _, end = header.strip().partition("-")
    try:
        return int(end)
    except ValueError:
        return None


def _seconds(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None
