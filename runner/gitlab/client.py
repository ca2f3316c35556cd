"""One client for every conversation pyci has with a GitLab server, over httpx.

Here: the REST API that pipeline loading needs (repository files, CI templates, tags, project
facts), what `--gitlab-variables` and `pyci reproduce` read (jobs, pipelines, CI/CD variables,
protected refs, job artifacts) and plain downloads for `include:remote`. Every failure becomes
a `GitLabError` whose message is one line naming what was asked and what the server (or the
network) answered.

Tokens go only to the server they belong to: redirects are followed here, one hop at a time,
and the token is dropped as soon as a hop leaves the server's origin (httpx would forward a
`PRIVATE-TOKEN` header anywhere). A token never appears in a message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import httpx

from runner.gitlab.errors import GitLabError, GitLabTimeout
from runner.gitlab.server import Server, origin_of

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # more than GitLab's own include size limit (4 MB)
TAG_PAGES = 20  # 2,000 tags: enough to resolve a component's version
LIST_PAGES = 50  # 5,000 entries (variables, jobs, protected refs): more than GitLab allows
MAX_ARTIFACTS_BYTES = 1024 * 1024 * 1024  # GitLab's default maximum artifacts size is 100 MB


class GitLabClient:
    """REST calls against one server. `requests` counts what went over the network."""

    def __init__(
        self, server: Server, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.server = server
        self.requests = 0
        self._http = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "pyci"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitLabClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the REST API ---------------------------------------------------------------------

    def project(self, project: str) -> dict[str, Any]:
        """`GET /projects/:id`: the project's facts (default branch, visibility, ...)."""
        return self._json(f"/projects/{_id(project)}", what=f"project `{project}`")

    def file_raw(self, project: str, path: str, ref: str) -> bytes:
        """`GET /projects/:id/repository/files/:path/raw?ref=`: one file at one ref."""
        return self._api_get(
            f"/projects/{_id(project)}/repository/files/{_id(path)}/raw",
            {"ref": ref},
            what=f"project `{project}` file `{path}` at `{ref}`",
        ).content

    def ci_template(self, name: str) -> str:
        """`GET /templates/gitlab_ci_ymls/:key`: a CI/CD template's content."""
        data = self._json(f"/templates/gitlab_ci_ymls/{_id(name)}", what=f"template `{name}`")
        content = data.get("content") if isinstance(data, dict) else None
        if not isinstance(content, str):
            raise GitLabError(f"template `{name}`: the server's answer has no content")
        return content

    def tags(self, project: str) -> list[str]:
        """`GET /projects/:id/repository/tags`, every page (up to TAG_PAGES of 100)."""
        data = self._pages(
            f"/projects/{_id(project)}/repository/tags", TAG_PAGES, what=f"project `{project}` tags"
        )
        return [str(tag["name"]) for tag in data if "name" in tag]

    def job(self, project: str, job_id: int) -> dict[str, Any]:
        """`GET /projects/:id/jobs/:job_id`: name, stage, ref, tag, status, pipeline, commit..."""
        return self._object(f"/projects/{_id(project)}/jobs/{job_id}", what=f"job {job_id}")

    def job_trace(self, project: str, job_id: int) -> str:
        """`GET /projects/:id/jobs/:job_id/trace`: the job's log as the runner sent it."""
        path = f"/projects/{_id(project)}/jobs/{job_id}/trace"
        return self._api_get(path, None, what=f"job {job_id} log").content.decode(errors="replace")

    def pipeline(self, project: str, pipeline_id: int) -> dict[str, Any]:
        """`GET /projects/:id/pipelines/:pipeline_id`: source, ref, sha, tag, before_sha..."""
        path = f"/projects/{_id(project)}/pipelines/{pipeline_id}"
        return self._object(path, what=f"pipeline {pipeline_id}")

    def merge_request(self, project: str, iid: int) -> dict[str, Any]:
        """`GET /projects/:id/merge_requests/:iid`: title, source and target branch..."""
        path = f"/projects/{_id(project)}/merge_requests/{iid}"
        return self._object(path, what=f"merge request !{iid}")

    def pipeline_jobs(self, project: str, pipeline_id: int) -> list[dict[str, Any]]:
        """`GET /projects/:id/pipelines/:pipeline_id/jobs?include_retried=true`, every page."""
        path = f"/projects/{_id(project)}/pipelines/{pipeline_id}/jobs"
        params = {"include_retried": "true"}
        return self._pages(path, LIST_PAGES, params, what=f"pipeline {pipeline_id} jobs")

    def pipeline_variables(self, project: str, pipeline_id: int) -> list[dict[str, Any]]:
        """`GET /projects/:id/pipelines/:pipeline_id/variables`: the variables it was run with."""
        path = f"/projects/{_id(project)}/pipelines/{pipeline_id}/variables"
        return self._pages(path, 1, what=f"pipeline {pipeline_id} variables")

    def project_variables(self, project: str) -> list[dict[str, Any]]:
        """`GET /projects/:id/variables`, every page (maintainers only)."""
        path = f"/projects/{_id(project)}/variables"
        return self._pages(path, LIST_PAGES, what=f"project `{project}` CI/CD variables")

    def group_variables(self, group: str) -> list[dict[str, Any]]:
        """`GET /groups/:id/variables`, every page (maintainers of the group only)."""
        path = f"/groups/{_id(group)}/variables"
        return self._pages(path, LIST_PAGES, what=f"group `{group}` CI/CD variables")

    def protected_refs(self, project: str) -> list[str]:
        """The names (maybe `*` wildcards) of `GET /projects/:id/protected_branches` and
        `protected_tags`."""
        names: list[str] = []
        for kind in ("protected_branches", "protected_tags"):
            path = f"/projects/{_id(project)}/{kind}"
            data = self._pages(path, LIST_PAGES, what=f"project `{project}` {kind}")
            names += [str(entry["name"]) for entry in data if "name" in entry]
        return names

    def download_job_artifacts(self, project: str, job_id: int, sink: BinaryIO) -> None:
        """`GET /projects/:id/jobs/:job_id/artifacts`: the job's artifacts archive (a zip),
        written to `sink` (it may be far larger than an API answer)."""
        path = f"/projects/{_id(project)}/jobs/{job_id}/artifacts"
        self._get(
            self.server.api + path,
            None,
            authenticated=True,
            what=f"job {job_id} artifacts",
            sink=sink,
        )

    # --- plain downloads --------------------------------------------------------------------

    def fetch_url(self, url: str) -> bytes:
        """A GET of any URL (`include:remote`): no token is ever sent with it."""
        return self._get(url, None, authenticated=False, what=f"`{url}`").content

    # --- plumbing -----------------------------------------------------------------------------

    def _json(self, path: str, params: dict[str, str] | None = None, *, what: str) -> Any:
        answer = self._api_get(path, params, what=what)
        try:
            return json.loads(answer.content)
        except ValueError as exc:
            raise GitLabError(f"{what}: the server's answer is not JSON") from exc

    def _object(self, path: str, *, what: str) -> dict[str, Any]:
        data = self._json(path, what=what)
        if not isinstance(data, dict):
            raise GitLabError(f"{what}: the server's answer is not an object")
        return data

    def _pages(
        self, path: str, pages: int, params: dict[str, str] | None = None, *, what: str
    ) -> list[dict[str, Any]]:
        """A list endpoint's entries, page by page (100 each) until a short page."""
        entries: list[dict[str, Any]] = []
        for page in range(1, pages + 1):
            query = {**(params or {}), "per_page": "100", "page": str(page)}
            data = self._json(path, query, what=what)
            if not isinstance(data, list):
                raise GitLabError(f"{what}: the server's answer is not a list")
            entries += [entry for entry in data if isinstance(entry, dict)]
            if len(data) < 100:
                break
        return entries

    def _api_get(self, path: str, params: dict[str, str] | None, *, what: str) -> _Answer:
        return self._get(self.server.api + path, params, authenticated=True, what=what)

    def _get(
        self,
        url: str,
        params: dict[str, str] | None,
        *,
        authenticated: bool,
        what: str,
        sink: BinaryIO | None = None,
    ) -> _Answer:
        """GET, following redirects; with `sink`, a successful body goes there, not to memory."""
        token = {"PRIVATE-TOKEN": self.server.token} if authenticated and self.server.token else {}
        answer = self.request("GET", url, params, token, what=what, sink=sink)
        _raise_for_status(answer, what)
        return answer

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        token_headers: dict[str, str],
        *,
        what: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        limit: int = MAX_RESPONSE_BYTES,
        sink: BinaryIO | None = None,
    ) -> _Answer:
        """One request, redirects followed one hop at a time: `token_headers` go only to the
        server's own origin, so a redirect elsewhere (object storage) never sees a token.
        The answer is returned whatever its status (callers decide what a status means).
        With `sink`, a 200 answer's body is written there (up to MAX_ARTIFACTS_BYTES), not
        kept in memory."""
        for _hop in range(MAX_REDIRECTS + 1):
            sent = dict(headers or {})
            if origin_of(url) == self.server.origin:
                sent.update(token_headers)
            answer = self._send(method, url, params, sent, what, content, limit, sink)
            if answer.status in _REDIRECTS and answer.location:
                url = urljoin(answer.url, answer.location)
                params = None  # the location carries its own query
                if answer.status == 303:
                    method, content = "GET", None
                continue
            return answer
        raise GitLabError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _send(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        what: str,
        content: bytes | None = None,
        limit: int = MAX_RESPONSE_BYTES,
        sink: BinaryIO | None = None,
    ) -> _Answer:
        self.requests += 1
        try:
            with self._http.stream(
                method, url, params=params, headers=headers, content=content
            ) as response:
                body = bytearray()
                to_sink = sink is not None and response.status_code == 200
                if to_sink:
                    limit = MAX_ARTIFACTS_BYTES
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise GitLabError(f"{what}: the answer is larger than {limit} bytes")
                    if to_sink:
                        sink.write(chunk)  # type: ignore[union-attr]
                    else:
                        body += chunk
                return _Answer(
                    response.status_code,
                    str(response.url),
                    response.headers.get("location"),
                    bytes(body),
                    dict(response.headers),
                )
        except httpx.TimeoutException as exc:
            raise GitLabTimeout(f"{what}: {self._where(url)} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise GitLabError(f"{what}: cannot reach {self._where(url)} ({exc})") from exc

    @staticmethod
    def _where(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class _Answer:
    """What one request brought back, its body read (and bounded) already."""

    status: int
    url: str
    location: str | None
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case (httpx's)


def _id(value: str) -> str:
    """A project path or file path as one URL path segment (`group/proj` -> `group%2Fproj`)."""
    return quote(value, safe="")


def _raise_for_status(answer: _Answer, what: str) -> None:
    if answer.status < 400:
        return
    status = answer.status
    if status == 401:
        detail = "the token is missing or invalid (set PYCI_GITLAB_TOKEN)"
    elif status == 403:
        detail = "access denied"
    elif status == 404:
        detail = "not found (or not visible without a token)"
    else:
        detail = f"HTTP {status}"
    raise GitLabError(f"{what}: {detail}", status, _server_message(answer.content))


def _server_message(content: bytes) -> str:
    """GitLab's error bodies are `{"message": "404 Project Not Found"}` (or `error`)."""
    try:
        body = json.loads(content)
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")
    return ""
