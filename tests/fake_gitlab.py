"""A contract double of GitLab's REST API on loopback, written from GitLab's API docs
(doc/api/repository_files.md, tags.md, templates/gitlab_ci_ymls.md, projects.md).

It serves what the tests put in it: projects (files at several refs, tags, a default
branch, private ones behind a token), CI/CD templates and plain files for `include:remote`.
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


@dataclass
class FakeProject:
    path: str  # group/project
    refs: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> {file path: text}
    tags: dict[str, str] = field(default_factory=dict)  # tag name -> ref in `refs`
    default_branch: str = "main"
    private: bool = False
    id: int = 0

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
        self.static: dict[str, bytes] = {}  # path -> body, for include:remote
        self.redirects: dict[str, str] = {}  # path -> absolute location (302)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.fqdn = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeGitLab:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

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
            return self._project_answer(project, parts[2:], request.query)
        return _json(404, {"error": "404 Not Found"})

    def _project(self, key: str) -> FakeProject | None:
        if key.isdigit():
            return next((p for p in self.projects.values() if p.id == int(key)), None)
        return self.projects.get(key)

    def _project_answer(
        self, project: FakeProject, rest: list[str], query: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if not rest:
            return _json(
                200,
                {
                    "id": project.id,
                    "path_with_namespace": project.path,
                    "default_branch": project.default_branch,
                    "visibility": "private" if project.private else "public",
                },
            )
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
