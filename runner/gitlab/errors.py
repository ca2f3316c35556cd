"""How a conversation with a GitLab server fails, apart from the client that has it: modules
that only catch or raise these do not import httpx."""

from __future__ import annotations

from runner.core.errors import PyciError


class GitLabError(PyciError):
    """A request to GitLab failed; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, server_message: str = ""):
        super().__init__(message)
        self.status = status
        self.server_message = server_message  # GitLab's own `message` (`404 File Not Found`)


class GitLabTimeout(GitLabError):
    """The server did not answer in time."""
