"""The include kinds that live on a GitLab server: `project`, `template`, `component` and
`remote`, fetched once and kept in a cache under `$PYCI_HOME/includes`.

What may change on the server (a branch, `~latest`, a remote URL without `integrity`) is
fetched again once its cached copy is older than `ttl`; what cannot (a commit SHA, a
component's exact version, a remote file with `integrity`) is kept for good. `--offline`
reads only the cache; `pyci fetch-includes` fetches everything again. A project given with
`--include-project group/proj=PATH` is read from that local checkout instead, whatever the
ref: for people who develop a template and the pipeline that uses it together.

Nested includes resolve as GitLab resolves them: `local:` inside a `project:` or `component:`
file means that project at that ref; inside a `remote:` or `template:` file, the pipeline's
own project.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runner.core.errors import PyciError
from runner.gitlab.errors import GitLabError, GitLabTimeout
from runner.gitlab.server import Server

if TYPE_CHECKING:  # imported when a request is sent: httpx is ~40 ms, and most runs send none
    from runner.gitlab.client import GitLabClient

DEFAULT_TTL = 3600.0  # seconds a branch's file is trusted before it is fetched again
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_PARTIAL = re.compile(r"\d+(\.\d+)?")


class IncludeError(PyciError):
    """An include that cannot be read; the message is one line, in GitLab's words where
    GitLab has them."""


@dataclass(frozen=True)
class IncludeOptions:
    """What the command line says about server-side includes (the config layer's own type)."""

    offline: bool = False
    refresh: bool = False
    gitlab_url: str | None = None  # --gitlab-url, else PYCI_GITLAB_URL, else the git remote
    local_projects: Mapping[str, Path] = field(default_factory=dict)  # --include-project


@dataclass(frozen=True)
class IncludeSettings:
    """How includes from a server are found. `server_url` is None when no GitLab is known (no
    git remote and no --gitlab-url). `token_for(url)` finds the token for it, asked only when a
    request is about to be sent: it may run git's credential helper, which a run whose
    includes are all local or cached must not pay for (nor be prompted by)."""

    server_url: str | None
    cache_dir: Path
    offline: bool = False
    refresh: bool = False  # fetch even what the cache holds (pyci fetch-includes)
    ttl: float = DEFAULT_TTL
    local_projects: Mapping[str, Path] = field(default_factory=dict)
    token_for: Callable[[str], str | None] = lambda url: None


@dataclass(frozen=True)
class Origin:
    """Where an included file comes from: decides where its own `local:` includes are read.
    `project` None is the pipeline's own project (the files on disk)."""

    project: str | None = None
    ref: str | None = None
    local_dir: Path | None = None  # a --include-project checkout


PIPELINE_PROJECT = Origin()


@dataclass(frozen=True)
class FetchedFile:
    name: str  # how messages and `files` name it: `group/proj@ref:ci/x.yml`, a URL, ...
    text: str
    origin: Origin  # where this file's `local:` includes are read


class RemoteIncludes:
    """Reads server-side includes through one client, with the cache in front of it."""

    def __init__(self, settings: IncludeSettings) -> None:
        self.settings = settings
        self._client: GitLabClient | None = None
        self._default_branches: dict[str, str] = {}

    @property
    def requests(self) -> int:
        """Requests sent to the server so far (0 when everything came from the cache)."""
        return self._client.requests if self._client else 0

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # --- the four kinds -----------------------------------------------------------------------

    def project_file(self, project: str, path: str, ref: str | None) -> FetchedFile:
        local = self.settings.local_projects.get(project)
        if local is not None:
            return self._local_checkout_file(project, local, path)
        ref = ref or self._default_branch(project)
        name = f"{project}@{ref}:{path}"
        text = self._cached(
            ("project", project, ref, path),
            immutable=bool(_SHA.fullmatch(ref)),
            what=f"include:project `{project}` file `{path}` (ref `{ref}`)",
            fetch=lambda client: _project_file(client, project, path, ref),
            errors={},
        )
        return FetchedFile(name, text, Origin(project, ref))

    def template(self, name: str) -> FetchedFile:
        key = name.removesuffix(".gitlab-ci.yml")
        text = self._cached(
            ("template", key),
            immutable=False,
            what=f"include:template `{name}`",
            fetch=lambda client: client.ci_template(key).encode(),
            errors={404: f"Included file `{name}` is empty or does not exist!"},
        )
        return FetchedFile(f"template:{name}", text, PIPELINE_PROJECT)

    def remote(self, url: str, integrity: str | None) -> FetchedFile:
        text = self._cached(
            ("remote", url, integrity or ""),
            immutable=integrity is not None,
            what=f"include:remote `{url}`",
            fetch=lambda client: _checked_integrity(url, client.fetch_url(url), integrity),
            errors={},
            remote_url=url,
        )
        return FetchedFile(url, text, PIPELINE_PROJECT)

    def component(self, address: str) -> FetchedFile:
        """`fqdn/group/project/name@version`: `templates/name.yml` or `templates/name/template.yml`
        of the project at the version (`~latest`, `1`, `1.2`, `1.2.3`, a SHA or a ref)."""
        project, name, version = self._component_parts(address)
        local = self.settings.local_projects.get(project)
        candidates = (f"templates/{name}.yml", f"templates/{name}/template.yml")
        if local is not None:
            for path in candidates:
                if (local / path).is_file():
                    return self._local_checkout_file(project, local, path)
            raise IncludeError(f"Component '{address}' - content not found in {local}")
        ref = self._component_ref(project, version, address)
        for path in candidates:
            try:
                text = self._cached(
                    ("project", project, ref, path),
                    immutable=True,
                    what=f"include:component `{address}` ({path} at `{ref}`)",
                    fetch=lambda client, path=path: client.file_raw(project, path, ref),
                    errors={404: "not there"},
                )
            except IncludeError as exc:
                if str(exc) == "not there":  # the other layout may exist
                    continue
                raise
            return FetchedFile(f"component:{address}", text, Origin(project, ref))
        raise IncludeError(f"Component '{address}' - content not found")

    # --- components -------------------------------------------------------------------------

    def _component_parts(self, address: str) -> tuple[str, str, str]:
        path, _, version = address.partition("@")
        if not version:
            raise IncludeError(f"Component '{address}' - the version is missing (`@1.0`)")
        fqdn = Server(self._server_url(f"include:component `{address}`")).fqdn
        if self.settings.local_projects:  # an override may name a project of any server
            _, _, rest = path.partition("/")
            project, _, name = rest.rpartition("/")
            if project in self.settings.local_projects:
                return project, name, version
        if not path.startswith(fqdn + "/"):
            raise IncludeError(
                f"Component '{address}' - the component path must start with the server's "
                f"FQDN `{fqdn}` (CI_SERVER_FQDN)"
            )
        project, _, name = path.removeprefix(fqdn + "/").rpartition("/")
        if not project or not name:
            raise IncludeError(f"Component '{address}' - the path must be FQDN/project/name")
        return project, name, version

    def _component_ref(self, project: str, version: str, address: str) -> str:
        """The tag a version names, as the CI/CD catalog resolves it: `~latest` the highest
        release, `1` or `1.2` the highest release with that prefix; else the version itself
        (an exact tag, a SHA or a branch)."""
        if version != "~latest" and not _PARTIAL.fullmatch(version):
            return version
        tags = json.loads(
            self._cached(
                ("tags", project),
                immutable=False,
                what=f"include:component `{address}` (tags of `{project}`)",
                fetch=lambda client: json.dumps(client.tags(project)).encode(),
                errors={404: f"Component '{address}' - project `{project}` not found"},
            )
        )
        releases = sorted(
            (tuple(int(n) for n in m.groups()), tag)
            for tag in tags
            if (m := _SEMVER.fullmatch(tag))
        )
        if version != "~latest":
            prefix = tuple(int(n) for n in version.split("."))
            releases = [r for r in releases if r[0][: len(prefix)] == prefix]
        if not releases:
            raise IncludeError(f"Component '{address}' - no released version matches `{version}`")
        return releases[-1][1]

    # --- cache and server -------------------------------------------------------------------

    def _cached(
        self,
        key: tuple[str, ...],
        *,
        immutable: bool,
        what: str,
        fetch: Callable[[GitLabClient], bytes],
        errors: Mapping[int, str],
        remote_url: str | None = None,
    ) -> str:
        server_url = None if remote_url else self._server_url(what)
        path = self._cache_path(server_url, key)
        fresh = path.is_file() and (
            immutable or time.time() - path.stat().st_mtime < self.settings.ttl
        )
        if path.is_file() and (self.settings.offline or (fresh and not self.settings.refresh)):
            return path.read_text(encoding="utf-8")
        if self.settings.offline:
            raise IncludeError(
                f"{what} is not in pyci's cache and --offline forbids fetching it: "
                "run `pyci fetch-includes` (or any `pyci validate`) online first"
            )
        client = self._client_for(remote_url or "")
        try:
            content = fetch(client)
        except GitLabError as exc:
            if exc.status in errors:
                raise IncludeError(errors[exc.status]) from exc
            if remote_url is not None:
                raise IncludeError(_remote_failure(remote_url, exc)) from exc
            raise IncludeError(str(exc)) from exc
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise IncludeError(f"{what}: the file is not UTF-8 text") from None
        _write_atomically(path, content)
        return text

    def _cache_path(self, server_url: str | None, key: tuple[str, ...]) -> Path:
        where = server_url or ""
        digest = hashlib.sha256(json.dumps([where, *key]).encode()).hexdigest()
        return self.settings.cache_dir / digest[:2] / f"{digest}.yml"

    def _server_url(self, what: str) -> str:
        if self.settings.server_url is None:
            raise IncludeError(
                f"{what}: no GitLab server is known (the repository has no remote): "
                "pass --gitlab-url or set PYCI_GITLAB_URL"
            )
        return self.settings.server_url

    def _client_for(self, download_url: str) -> GitLabClient:
        """The one client of this read, made on the first request: for the known server with
        its token; with no server known, for `download_url` (an `include:remote`), tokenless."""
        if self._client is None:
            url = self.settings.server_url
            server = Server(url, self.settings.token_for(url)) if url else Server(download_url)
            from runner.gitlab.client import GitLabClient

            self._client = GitLabClient(server)
        return self._client

    def _default_branch(self, project: str) -> str:
        """GitLab's `ref` default for `include:project`: the project's HEAD (default branch)."""
        if project not in self._default_branches:
            facts = json.loads(
                self._cached(
                    ("project-facts", project),
                    immutable=False,
                    what=f"include:project `{project}`",
                    fetch=lambda client: json.dumps(client.project(project)).encode(),
                    errors={
                        404: f"Project `{project}` not found or access denied! Make sure any "
                        "includes in the pipeline configuration are correctly defined."
                    },
                )
            )
            self._default_branches[project] = str(facts.get("default_branch") or "main")
        return self._default_branches[project]

    def _local_checkout_file(self, project: str, checkout: Path, path: str) -> FetchedFile:
        file = checkout / path
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise IncludeError(
                f"Project `{project}` file `{path}` does not exist in {checkout} "
                "(--include-project)!"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IncludeError(f"cannot read {file}: {exc}") from None
        return FetchedFile(f"{project}:{path}", text, Origin(project, None, checkout))


def _project_file(client: GitLabClient, project: str, path: str, ref: str) -> bytes:
    """One file of a project, GitLab's words for each way it can be missing."""
    try:
        return client.file_raw(project, path, ref)
    except GitLabError as exc:
        if exc.status not in (403, 404):
            raise
        if exc.status == 403 or "Project" in exc.server_message:
            raise IncludeError(
                f"Project `{project}` not found or access denied! Make sure any includes in "
                "the pipeline configuration are correctly defined."
            ) from exc
        if "Commit" in exc.server_message or "ref" in exc.server_message.lower():
            raise IncludeError(f"Project `{project}` reference `{ref}` does not exist!") from exc
        raise IncludeError(f"Project `{project}` file `{path}` does not exist!") from exc


def _remote_failure(url: str, exc: GitLabError) -> str:
    """GitLab's words for a remote file that could not be fetched."""
    because = "a socket error"
    if exc.status is not None:
        because = f"HTTP code `{exc.status}` error"
    elif isinstance(exc, GitLabTimeout):
        because = "a timeout error"
    return f"Remote file `{url}` could not be fetched because of {because}!"


def _checked_integrity(url: str, content: bytes, integrity: str | None) -> bytes:
    """`integrity: sha256-<base64>` (Subresource Integrity) against the fetched bytes."""
    if integrity is None:
        return content
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha256":
        raise IncludeError(f"Remote file `{url}`: integrity must be `sha256-<base64 digest>`")
    actual = base64.b64encode(hashlib.sha256(content).digest()).decode()
    if actual != expected:
        raise IncludeError(f"Remote file `{url}` does not match the integrity hash (sha256)")
    return content


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
