"""A contract double of GitLab's REST API on loopback, written from GitLab's API docs
(doc/api/repository_files.md, tags.md, templates/gitlab_ci_ymls.md, projects.md, jobs.md,
pipelines.md, project_level_variables.md, group_level_variables.md, job_artifacts.md,
protected_branches.md, protected_tags.md, merge_requests.md).

It serves what the tests put in it: projects (files at several refs, tags, a default
branch, private ones behind a token), CI/CD templates and plain files for `include:remote`;
pipelines with their jobs (logs, artifacts archives), merge requests, project and group CI/CD
variables (readable with the token only, as they need the Maintainer role) and protected
branches and tags.
Every request is recorded, so a test can assert what went over the network (and that a cache
hit sent nothing). As GitLab does, a private project is a 404 to a caller without a valid
token, not a 403: its existence is not disclosed.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from dataclasses import dataclass, field

from tests.loopback import LoopbackHTTP


@dataclass
class FakeJob:
    id: int
    name: str
    stage: str
    status: str = "success"  # success, failed, canceled, skipped, manual...
    failure_reason: str | None = None
    trace: str = ""
    artifacts: bytes | None = None  # the archive (zip), None: the job kept none
    allow_failure: bool = False
    pipeline_id: int = 0


@dataclass
class FakePipeline:
    id: int
    ref: str
    sha: str
    source: str = "push"
    tag: bool = False
    before_sha: str = "0" * 40
    status: str = "failed"
    variables: list[dict] = field(default_factory=list)  # {key, value, variable_type}
    jobs: list[FakeJob] = field(default_factory=list)


@dataclass
class FakeProject:
    path: str  # group/project
    refs: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> {file path: text}
    tags: dict[str, str] = field(default_factory=dict)  # tag name -> ref in `refs`
    default_branch: str = "main"
    private: bool = False
    id: int = 0
    variables: list[dict] = field(default_factory=list)  # as the variables API answers
    protected_branches: list[str] = field(default_factory=lambda: ["main"])
    protected_tags: list[str] = field(default_factory=list)
    pipelines: dict[int, FakePipeline] = field(default_factory=dict)
    merge_requests: dict[int, dict] = field(default_factory=dict)  # iid -> the MR's fields

    def add_pipeline(self, pipeline_id: int, ref: str, sha: str, **kwargs: object) -> FakePipeline:
        pipeline = FakePipeline(pipeline_id, ref, sha, **kwargs)  # type: ignore[arg-type]
        self.pipelines[pipeline_id] = pipeline
        return pipeline

    def add_job(
        self, pipeline: FakePipeline, job_id: int, name: str, stage: str, **kwargs: object
    ) -> FakeJob:
        job = FakeJob(job_id, name, stage, pipeline_id=pipeline.id, **kwargs)  # type: ignore[arg-type]
        pipeline.jobs.append(job)
        return job

    def find_job(self, job_id: int) -> tuple[FakePipeline, FakeJob] | None:
        for pipeline in self.pipelines.values():
            for job in pipeline.jobs:
                if job.id == job_id:
                    return pipeline, job
        return None

    def files_at(self, ref: str) -> dict[str, str] | None:
        if ref in self.tags:
            ref = self.tags[ref]
        if ref == "HEAD":
            ref = self.default_branch
        return self.refs.get(ref)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # the path as sent (still %-encoded), without the query
    segments: tuple[str, ...]  # the path's segments, each decoded
    query: dict[str, str]
    headers: dict[str, str]


class FakeGitLab:
    """`with FakeGitLab() as gitlab:` serves on `gitlab.url` until the block ends."""

    def __init__(self, token: str = "glpat-test-token") -> None:
        self.token = token
        self.projects: dict[str, FakeProject] = {}
        self.templates: dict[str, str] = {}
        self.groups: dict[str, list[dict]] = {}  # group full path -> its CI/CD variables
        self.static: dict[str, bytes] = {}  # path -> body, for include:remote
        self.redirects: dict[str, str] = {}  # path -> absolute location (302)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._http = LoopbackHTTP(_handler(self))
        self.url = f"http://127.0.0.1:{self._http.port}"
        self.fqdn = f"127.0.0.1:{self._http.port}"

    def __enter__(self) -> FakeGitLab:
        self._http.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.stop()

    # --- content ------------------------------------------------------------------------------

    def add_project(self, path: str, **kwargs: object) -> FakeProject:
        project = FakeProject(path, id=len(self.projects) + 1, **kwargs)  # type: ignore[arg-type]
        self.projects[path] = project
        return project

    def api_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/api/v4/")]

    # --- answers ------------------------------------------------------------------------------

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
        if request.path in self.redirects:
            return 302, {"Location": self.redirects[request.path]}, b""
        if request.path in self.static:
            return 200, {"Content-Type": "text/plain"}, self.static[request.path]
        if request.segments[:3] != ("", "api", "v4"):
            return _json(404, {"error": "404 Not Found"})
        parts = list(request.segments[3:])
        authorized = request.headers.get("private-token") == self.token
        if not parts:
            return _json(404, {"error": "404 Not Found"})
        if parts[0] == "templates" and len(parts) == 3 and parts[1] == "gitlab_ci_ymls":
            name = parts[2]
            if name not in self.templates:
                return _json(404, {"message": "404 Template Not Found"})
            return _json(200, {"name": name, "content": self.templates[name]})
        if parts[0] == "projects" and len(parts) >= 2:
            project = self._project(parts[1])
            if project is None or (project.private and not authorized):
                return _json(404, {"message": "404 Project Not Found"})
            return self._project_answer(project, parts[2:], request.query, authorized)
        if parts[0] == "groups" and len(parts) == 3 and parts[2] == "variables":
            if parts[1] not in self.groups:
                return _json(404, {"message": "404 Group Not Found"})
            if not authorized:
                return _json(401, {"message": "401 Unauthorized"})
            return _paged(self.groups[parts[1]], request.query)
        return _json(404, {"error": "404 Not Found"})

    def _project(self, key: str) -> FakeProject | None:
        if key.isdigit():
            return next((p for p in self.projects.values() if p.id == int(key)), None)
        return self.projects.get(key)

    def _project_answer(
        self, project: FakeProject, rest: list[str], query: dict[str, str], authorized: bool
    ) -> tuple[int, dict[str, str], bytes]:
        if not rest:
            namespace = project.path.rpartition("/")[0]
            return _json(
                200,
                {
                    "id": project.id,
                    "path_with_namespace": project.path,
                    "default_branch": project.default_branch,
                    "visibility": "private" if project.private else "public",
                    "namespace": {
                        "full_path": namespace,
                        "kind": "group" if namespace in self.groups else "user",
                    },
                },
            )
        if rest[0] in ("jobs", "pipelines", "variables", "merge_requests") or rest[0].startswith(
            "protected_"
        ):
            return self._ci_answer(project, rest, query, authorized)
        if rest[:2] == ["repository", "tags"] and len(rest) == 2:
            # newest first, as GitLab orders by `updated` by default; pages of `per_page`
            names = list(reversed(project.tags))
            per_page = int(query.get("per_page", "20"))
            page = int(query.get("page", "1"))
            chosen = names[(page - 1) * per_page : page * per_page]
            return _json(200, [{"name": name} for name in chosen])
        if rest[:2] == ["repository", "files"] and len(rest) == 4 and rest[3] == "raw":
            if "ref" not in query:
                return _json(400, {"error": "ref is missing"})
            files = project.files_at(query["ref"])
            if files is None:
                return _json(404, {"message": "404 Commit Not Found"})
            if rest[2] not in files:
                return _json(404, {"message": "404 File Not Found"})
            return 200, {"Content-Type": "text/plain"}, files[rest[2]].encode()
        return _json(404, {"error": "404 Not Found"})

    def _ci_answer(
        self, project: FakeProject, rest: list[str], query: dict[str, str], authorized: bool
    ) -> tuple[int, dict[str, str], bytes]:
        """Jobs, pipelines, merge requests, CI/CD variables and protected refs."""
        base = f"{self.url}/{project.path}"
        if rest == ["variables"]:
            if not authorized:  # the Maintainer role at least
                return _json(401, {"message": "401 Unauthorized"})
            return _paged(project.variables, query)
        if rest == ["protected_branches"]:
            return _paged([{"name": name} for name in project.protected_branches], query)
        if rest == ["protected_tags"]:
            return _paged([{"name": name} for name in project.protected_tags], query)
        if rest[0] == "merge_requests" and len(rest) == 2 and rest[1].isdigit():
            found = project.merge_requests.get(int(rest[1]))
            if found is None:
                return _json(404, {"message": "404 Not found"})
            return _json(200, {"iid": int(rest[1]), "project_id": project.id, **found})
        if rest[0] == "jobs" and len(rest) >= 2 and rest[1].isdigit():
            located = project.find_job(int(rest[1]))
            if located is None:
                return _json(404, {"message": "404 Not found"})
            pipeline, job = located
            if len(rest) == 2:
                return _json(200, _job_json(job, pipeline, project, base))
            if rest[2:] == ["trace"]:
                return 200, {"Content-Type": "text/plain"}, job.trace.encode()
            if rest[2:] == ["artifacts"]:
                if job.artifacts is None:
                    return _json(404, {"message": "404 Not Found"})
                return 200, {"Content-Type": "application/zip"}, job.artifacts
        if rest[0] == "pipelines" and len(rest) >= 2 and rest[1].isdigit():
            pipeline = project.pipelines.get(int(rest[1]))
            if pipeline is None:
                return _json(404, {"message": "404 Not found"})
            if len(rest) == 2:
                return _json(200, _pipeline_json(pipeline, project, base))
            if rest[2:] == ["jobs"]:
                jobs = [_job_json(job, pipeline, project, base) for job in pipeline.jobs]
                return _paged(list(reversed(jobs)), query)  # newest first, as GitLab
            if rest[2:] == ["variables"]:
                if not authorized:
                    return _json(403, {"message": "403 Forbidden"})
                return _json(200, pipeline.variables)
        return _json(404, {"error": "404 Not Found"})


def _pipeline_json(pipeline: FakePipeline, project: FakeProject, base: str) -> dict:
    return {
        "id": pipeline.id,
        "iid": pipeline.id,
        "project_id": project.id,
        "status": pipeline.status,
        "source": pipeline.source,
        "ref": pipeline.ref,
        "sha": pipeline.sha,
        "before_sha": pipeline.before_sha,
        "tag": pipeline.tag,
        "web_url": f"{base}/-/pipelines/{pipeline.id}",
    }


def _job_json(job: FakeJob, pipeline: FakePipeline, project: FakeProject, base: str) -> dict:
    archive = (
        [{"file_type": "archive", "size": len(job.artifacts), "filename": "artifacts.zip"}]
        if job.artifacts is not None
        else []
    )
    return {
        "id": job.id,
        "name": job.name,
        "stage": job.stage,
        "status": job.status,
        "failure_reason": job.failure_reason,
        "allow_failure": job.allow_failure,
        "ref": pipeline.ref,
        "tag": pipeline.tag,
        "commit": {"id": pipeline.sha, "short_id": pipeline.sha[:8]},
        "pipeline": {
            "id": pipeline.id,
            "project_id": project.id,
            "ref": pipeline.ref,
            "sha": pipeline.sha,
            "status": pipeline.status,
            "source": pipeline.source,
        },
        "artifacts": archive,
        "artifacts_file": (
            {"filename": "artifacts.zip", "size": len(job.artifacts)} if job.artifacts else None
        ),
        "web_url": f"{base}/-/jobs/{job.id}",
    }


def _paged(entries: list, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    per_page = int(query.get("per_page", "20"))
    page = int(query.get("page", "1"))
    return _json(200, entries[(page - 1) * per_page : page * per_page])


def _json(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _handler(gitlab: FakeGitLab) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            # GitLab takes a project or file path as one %2F-encoded segment: split first,
            # then decode each segment
            segments = tuple(urllib.parse.unquote(s) for s in split.path.split("/"))
            request = Request(
                "GET",
                split.path,
                segments,
                dict(urllib.parse.parse_qsl(split.query)),
                {key.lower(): value for key, value in self.headers.items()},
            )
            status, headers, body = gitlab.answer(request)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler
