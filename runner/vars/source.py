"""Where a project's settings variables come from, read once per run, on first use.

The planner asks for them with the git facts (the project path and the ref decide which user
file entries and which protected variables apply); child pipelines of the same run ask again
and get the same answer without reading files or the server a second time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

# ProjectOptions holds a source, so every command imports this module before it forks its
# prefetch child: what reads files (pyyaml, the job shape: ~60 ms) is imported on first use.
if TYPE_CHECKING:
    from runner.vars.model import SettingsVariable
    from runner.vars.remote import ServerVariables
    from runner.vars.scope import SettingsVariables


class SettingsSource:
    """`directory`'s variables files, and with `from_server` its GitLab server's variables."""

    def __init__(
        self,
        directory: Path,
        *,
        from_server: bool = False,
        gitlab_url: str | None = None,
        fetched: ServerVariables | None = None,
        pipeline: tuple[SettingsVariable, ...] = (),
    ) -> None:
        """`fetched`: the server's variables, read already; `pipeline`: the variables an
        original pipeline ran with, above the files (`pyci reproduce` passes both)."""
        self.directory = directory
        self.from_server = from_server
        self.gitlab_url = gitlab_url
        self.fetched = fetched
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._loaded: SettingsVariables | None = None

    def variables(self, facts: Any) -> SettingsVariables:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load(facts)
            return self._loaded

    def _load(self, facts: Any) -> SettingsVariables:
        from runner.vars.files import (
            PROJECT_FILE,
            PROJECT_LEVEL,
            USER_LEVEL,
            read_variables_file,
            user_file,
        )
        from runner.vars.scope import for_project, for_ref

        levels = []
        protected = facts.is_branch and facts.ref_name == facts.default_branch
        if self.fetched is not None:
            levels += self.fetched.levels
            protected = self.fetched.protected_ref
        elif self.from_server:
            from runner.gitlab.server import find_server
            from runner.vars.remote import fetch_server_variables

            remote_url = facts.server_url if facts.has_remote else None
            server = find_server(self.gitlab_url, remote_url, self.directory)
            if server is None:
                from runner.core.errors import UsageError

                raise UsageError(
                    "--gitlab-variables: no GitLab server (set --gitlab-url or PYCI_GITLAB_URL)"
                )
            fetched = fetch_server_variables(server, facts.project_path, facts.ref_name)
            levels += fetched.levels
            protected = fetched.protected_ref
        user = read_variables_file(user_file(), USER_LEVEL, allow_projects=True)
        levels.append(tuple(for_project(user, facts.project_path)))
        levels.append(
            tuple(
                read_variables_file(
                    self.directory / PROJECT_FILE, PROJECT_LEVEL, allow_projects=False
                )
            )
        )
        levels.append(self.pipeline)
        return for_ref(levels, protected)

    # two sources of the same settings are equal (the prefetch child compares options)
    def _config(self) -> tuple[object, ...]:
        return (self.directory, self.from_server, self.gitlab_url, self.fetched, self.pipeline)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SettingsSource) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash(self._config())
