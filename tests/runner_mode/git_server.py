"""A real git server on loopback: Debian's `git-http-backend` run as a CGI behind a small
HTTP server that, as GitLab does for CI jobs, requires Basic auth as `gitlab-ci-token` with
the token of a job that is running. Every request is recorded with the credential it
carried (and whether it was accepted)."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.loopback import LoopbackHTTP

BACKEND = "/usr/lib/git-core/git-http-backend"


@dataclass(frozen=True)
class GitRequest:
    path: str
    user: str | None
    accepted: bool


class GitServer:
    """Serves the bare repositories under `root` at `url/<path>.git`."""

    def __init__(self, root: Path, authorize: Callable[[str], bool]) -> None:
        self.root = root
        self.authorize = authorize
        self.requests: list[GitRequest] = []
        self._http = LoopbackHTTP(_handler(self))
        self.url = f"http://127.0.0.1:{self._http.port}"

    def __enter__(self) -> GitServer:
        self._http.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.stop()

    def repo_url(self, path: str, token: str) -> str:
        """What GitLab puts in `git_info.repo_url`: the job token in the URL."""
        host = self.url.removeprefix("http://")
        return f"http://gitlab-ci-token:{token}@{host}/{path}.git"


def _handler(server: GitServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the CGI's output ends when the connection does

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _credential(self) -> tuple[str | None, str | None]:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None, None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password

        def _serve(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            user, password = self._credential()
            accepted = user == "gitlab-ci-token" and bool(password) and server.authorize(password)
            server.requests.append(GitRequest(split.path, user, accepted))
            if not accepted:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="GitLab"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": urllib.parse.unquote(split.path),
                "QUERY_STRING": split.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": user or "",
                "REMOTE_ADDR": self.client_address[0],
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            result = subprocess.run([BACKEND], input=body, capture_output=True, env=env)
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode(errors="replace").split("\r\n"):
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler
