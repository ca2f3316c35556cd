"""Which GitLab server a project talks to, and with which token.

The server: `--gitlab-url`, else `$PYCI_GITLAB_URL`, else `CI_SERVER_URL` as pyci derives it
from the repository's git remote. The token: `$PYCI_GITLAB_TOKEN`, else `$GITLAB_TOKEN`, else
what the repository's git credential helper holds for that host (asked without a prompt);
none at all is fine for public projects.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runner.core.errors import UsageError

TOKEN_VARIABLES = ("PYCI_GITLAB_TOKEN", "GITLAB_TOKEN")


@dataclass(frozen=True)
class Server:
    """A GitLab instance: its URL (`https://gitlab.example.com`) and the token to use there."""

    url: str
    token: str | None = None

    @property
    def api(self) -> str:
        return f"{self.url.rstrip('/')}/api/v4"

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return origin_of(self.url)

    @property
    def fqdn(self) -> str:
        """Host with a non-default port: what `CI_SERVER_FQDN` holds and components name."""
        parts = urlsplit(self.url)
        return parts.netloc.rsplit("@", 1)[-1]


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit: where a token may be sent."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def find_server(explicit_url: str | None, remote_url: str | None, directory: Path) -> Server | None:
    """The server for `directory`'s project with its token, or None when nothing names one."""
    url = server_url(explicit_url, remote_url)
    return Server(url, find_token(url, directory)) if url else None


def server_url(explicit_url: str | None, remote_url: str | None) -> str | None:
    """The server's URL, normalised (no trailing slash), or None when nothing names one; a
    URL that is not http(s)://host[...] is a usage error."""
    url = explicit_url or os.environ.get("PYCI_GITLAB_URL") or remote_url
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"GitLab URL {url!r}: expected http(s)://host[:port]")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def find_token(url: str, directory: Path) -> str | None:
    """The token for the server at `url`: the environment's, else git's credential helper's."""
    for name in TOKEN_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return credential_helper_token(url, directory)


def credential_helper_token(url: str, directory: Path) -> str | None:
    """The password git's credential helper keeps for the server's host, if a helper is set.

    `git credential fill` is git's own interface for this (gitpython has none); prompts are
    off, so a missing credential is simply no token."""
    from git import Repo
    from git.exc import GitError

    try:
        repo = Repo(directory, search_parent_directories=True)
        helper = repo.config_reader().get_value("credential", "helper", default="")
    except (GitError, OSError, ValueError):
        return None
    if not helper:
        return None
    parts = urlsplit(url)
    request = f"protocol={parts.scheme}\nhost={parts.netloc}\n\n"
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    try:
        with tempfile.TemporaryFile() as request_file:
            request_file.write(request.encode())
            request_file.seek(0)
            answer = repo.git.execute(["git", "credential", "fill"], istream=request_file, env=env)
    except (GitError, OSError):
        return None
    for line in str(answer).splitlines():
        key, _, value = line.partition("=")
        if key == "password" and value:
            return value
    return None
