"""GitLab's predefined `CI_*` / `GITLAB_*` variables for a local run, read from git.

`read_git_facts` reads what a GitLab pipeline would know from the repository (the commit, the
ref, the project path from the remote URL); `pipeline_variables` and `job_variables` turn those
facts into GitLab's variables. Where a local repository cannot answer (no remote, no commit
yet, detached HEAD), the choice made is the one documented in docs/evaluation.md, never an
error: a local run must work in a fresh `git init` too.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from runner.core.jobspec import Variable

__all__ = [
    "GitFacts",
    "RemoteInfo",
    "job_variables",
    "parse_remote_url",
    "pipeline_variables",
    "read_git_facts",
    "slugify",
]

ZERO_SHA = "0" * 40
LOCAL_SERVER_HOST = "gitlab.localhost"  # no remote: a name that cannot be a real server
LOCAL_NAMESPACE = "local"


def slugify(text: str) -> str:
    """GitLab's slug (CI_COMMIT_REF_SLUG and friends): lower case, every character but a-z and
    0-9 replaced by `-`, cut to 63 characters, no leading or trailing `-`."""
    return re.sub(r"[^a-z0-9]", "-", text.lower())[:63].strip("-")


@dataclass(frozen=True)
class RemoteInfo:
    server_host: str
    server_port: int
    server_protocol: str
    ssh_port: int
    project_path: str


def parse_remote_url(url: str) -> RemoteInfo | None:
    """Server and project path from a remote URL (https, ssh://, scp-like `git@host:path`)."""
    url = url.strip()
    scp = re.fullmatch(r"(?:[^@/]+@)?(?P<host>[^:/]+):(?!//)(?P<path>[^\\]+)", url)
    if scp and "://" not in url:
        return RemoteInfo(scp.group("host"), 443, "https", 22, _project_path(scp.group("path")))
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("http", "https", "ssh", "git", "git+ssh"):
        return None
    path = _project_path(parts.path)
    if not path:
        return None
    host = parts.hostname
    if parts.scheme in ("http", "https"):
        default = 443 if parts.scheme == "https" else 80
        return RemoteInfo(host, parts.port or default, parts.scheme, 22, path)
    return RemoteInfo(host, 443, "https", parts.port or 22, path)


def _project_path(path: str) -> str:
    path = path.strip("/")
    return path[: -len(".git")] if path.endswith(".git") else path


@dataclass(frozen=True)
class GitFacts:
    """What a pipeline knows about the repository; every field has a value, even without git."""

    sha: str
    short_sha: str
    before_sha: str
    ref_name: str
    ref_slug: str
    is_tag: bool
    is_branch: bool
    tag_message: str
    commit_title: str
    commit_message: str
    commit_description: str
    commit_timestamp: str
    commit_author: str
    default_branch: str
    project_path: str
    project_namespace: str
    project_name: str
    project_url: str
    repository_url: str
    server_host: str
    server_port: int
    server_protocol: str
    ssh_port: int
    user_name: str
    user_email: str
    user_login: str
    has_remote: bool

    @property
    def server_url(self) -> str:
        default = {"https": 443, "http": 80}.get(self.server_protocol)
        port = "" if self.server_port == default else f":{self.server_port}"
        return f"{self.server_protocol}://{self.server_host}{port}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(message: str) -> tuple[str, str]:
    """GitLab's commit title and description (app/models/commit.rb)."""
    if not message.strip():
        return "No commit message", "No commit message"
    full_title = re.split(r"[\r\n]", message, maxsplit=1)[0]
    if len(full_title) >= 100:
        # a first line of 100+ characters is cut at a word before 78, and the description
        # is then the whole message
        stop = full_title.rfind(" ", 0, 79)
        return full_title[: stop if stop >= 0 else 78] + "...", message
    rest = message.split("\n", 1)
    description = rest[1] if len(rest) > 1 else ""
    return full_title, description.removesuffix("\n")  # Ruby's chomp: one newline only


def read_git_facts(project_dir: Path) -> GitFacts:
    """Read the facts from the repository containing `project_dir` (gitpython)."""
    from runner import gitrepo  # imports gitpython: only when git is read

    project_dir = Path(project_dir).resolve()
    repo = gitrepo.repository(project_dir)
    try:
        return _facts(repo, project_dir)
    finally:
        if repo is not None:
            repo.close()


def _facts(repo, project_dir: Path) -> GitFacts:
    commit = None
    branch: str | None = None
    tag = None
    if repo is not None:
        try:
            commit = repo.head.commit
        except ValueError:  # unborn branch: no commit yet
            commit = None
        if not repo.head.is_detached:
            branch = repo.head.ref.name
        elif commit is not None:
            tag = next((t for t in repo.tags if _tag_commit(t) == commit), None)
            if tag is None:
                branch = next((h.name for h in repo.heads if h.commit == commit), None)

    remote_url = _remote_url(repo)
    remote = parse_remote_url(remote_url) if remote_url else None
    default_branch = _default_branch(repo, branch)

    if tag is not None:
        ref_name, is_tag, is_branch = tag.name, True, False
        tag_message = (tag.tag.message.strip() if tag.tag is not None else "") or ""
    elif branch is not None:
        ref_name, is_tag, is_branch, tag_message = branch, False, True, ""
    elif commit is not None:  # detached on a commit no branch or tag points at
        ref_name, is_tag, is_branch, tag_message = commit.hexsha, False, False, ""
    else:
        ref_name, is_tag, is_branch, tag_message = default_branch, False, True, ""

    if commit is not None:
        sha = commit.hexsha
        message = commit.message if isinstance(commit.message, str) else commit.message.decode()
        title, description = _describe(message)
        stamp = commit.committed_datetime.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        author = f"{commit.author.name} <{commit.author.email}>"
    else:
        sha, message, title, description, stamp = ZERO_SHA, "", "", "", _now()
        author = ""

    user_name, user_email = _git_user(repo)
    if remote is not None:
        project_path = remote.project_path
        host, port, protocol, ssh_port = (
            remote.server_host,
            remote.server_port,
            remote.server_protocol,
            remote.ssh_port,
        )
    else:
        root = Path(repo.working_tree_dir) if repo is not None and repo.working_tree_dir else None
        project_path = f"{LOCAL_NAMESPACE}/{(root or project_dir).name}"
        host, port, protocol, ssh_port = LOCAL_SERVER_HOST, 443, "https", 22
    namespace, _, name = project_path.rpartition("/")
    facts_without_urls = dict(
        sha=sha,
        short_sha=sha[:8],
        before_sha=ZERO_SHA,
        ref_name=ref_name,
        ref_slug=slugify(ref_name),
        is_tag=is_tag,
        is_branch=is_branch,
        tag_message=tag_message,
        commit_title=title,
        commit_message=message,
        commit_description=description,
        commit_timestamp=stamp,
        commit_author=author,
        default_branch=default_branch,
        project_path=project_path,
        project_namespace=namespace,
        project_name=name,
        server_host=host,
        server_port=port,
        server_protocol=protocol,
        ssh_port=ssh_port,
        user_name=user_name,
        user_email=user_email,
        user_login=(user_email.split("@")[0] if user_email else "") or _os_user(),
        has_remote=remote is not None,
    )
    probe = GitFacts(project_url="", repository_url="", **facts_without_urls)
    project_url = f"{probe.server_url}/{project_path}"
    if remote is not None:
        repository_url = f"{project_url}.git"
    else:
        root = repo.working_tree_dir if repo is not None else None
        repository_url = Path(root or project_dir).as_uri()
    return GitFacts(project_url=project_url, repository_url=repository_url, **facts_without_urls)


def _tag_commit(tag):
    try:
        return tag.commit
    except ValueError:  # a tag of something that is not a commit
        return None


def _remote_url(repo) -> str | None:
    if repo is None or not repo.remotes:
        return None
    remote = next((r for r in repo.remotes if r.name == "origin"), repo.remotes[0])
    try:
        return next(iter(remote.urls), None)
    except Exception:  # a remote without url: gitpython raises from `git remote get-url`
        return None


def _default_branch(repo, current: str | None) -> str:
    """The remote's HEAD, else main/master if present, else the current branch, else
    init.defaultBranch, else main."""
    if repo is not None:
        for remote in repo.remotes:
            try:
                target = repo.git.symbolic_ref(f"refs/remotes/{remote.name}/HEAD")
            except Exception:  # no remote HEAD recorded
                continue
            return target.removeprefix(f"refs/remotes/{remote.name}/")
        names = {h.name for h in repo.heads}
        for candidate in ("main", "master"):
            if candidate in names:
                return candidate
        if current:
            return current
        try:
            configured = repo.git.config("--get", "init.defaultBranch")
        except Exception:  # not configured
            configured = ""
        if configured:
            return configured
    return current or "main"


def _git_user(repo) -> tuple[str, str]:
    if repo is None:
        return _os_user(), ""
    reader = repo.config_reader()
    name = reader.get_value("user", "name", "") or _os_user()
    email = reader.get_value("user", "email", "")
    return str(name), str(email)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "pyci"


def _vars(pairs: dict[str, str | None]) -> list[Variable]:
    return [Variable(key, value) for key, value in pairs.items() if value is not None]


def pipeline_variables(
    facts: GitFacts,
    *,
    pipeline_source: str = "push",
    pipeline_id: int = 1,
    pipeline_name: str | None = None,
    config_path: str = ".gitlab-ci.yml",
    created_at: str | None = None,
) -> list[Variable]:
    """The pipeline-wide predefined variables (GitLab's names and formats)."""
    merge_request = pipeline_source == "merge_request_event"
    server_url = facts.server_url
    protected = facts.is_branch and facts.ref_name == facts.default_branch
    return _vars(
        {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_SERVER": "yes",
            "CI_SERVER_NAME": "GitLab",
            "CI_SERVER_HOST": facts.server_host,
            "CI_SERVER_FQDN": facts.server_host
            + ("" if facts.server_port in (80, 443) else f":{facts.server_port}"),
            "CI_SERVER_PORT": str(facts.server_port),
            "CI_SERVER_PROTOCOL": facts.server_protocol,
            "CI_SERVER_URL": server_url,
            "CI_SERVER_SHELL_SSH_HOST": facts.server_host,
            "CI_SERVER_SHELL_SSH_PORT": str(facts.ssh_port),
            "CI_API_V4_URL": f"{server_url}/api/v4",
            "CI_API_GRAPHQL_URL": f"{server_url}/api/graphql",
            "CI_CONFIG_PATH": config_path,
            "CI_PIPELINE_ID": str(pipeline_id),
            "CI_PIPELINE_IID": str(pipeline_id),
            "CI_PIPELINE_SOURCE": pipeline_source,
            "CI_PIPELINE_URL": f"{facts.project_url}/-/pipelines/{pipeline_id}",
            "CI_PIPELINE_CREATED_AT": created_at or _now(),
            "CI_PIPELINE_NAME": pipeline_name,
            "CI_PIPELINE_TRIGGERED": "true" if pipeline_source == "trigger" else None,
            "CI_COMMIT_SHA": facts.sha,
            "CI_COMMIT_SHORT_SHA": facts.short_sha,
            "CI_COMMIT_BEFORE_SHA": facts.before_sha,
            "CI_COMMIT_REF_NAME": facts.ref_name,
            "CI_COMMIT_REF_SLUG": facts.ref_slug,
            "CI_COMMIT_REF_PROTECTED": "true" if protected else "false",
            "CI_COMMIT_BRANCH": facts.ref_name if facts.is_branch and not merge_request else None,
            "CI_COMMIT_TAG": facts.ref_name if facts.is_tag else None,
            "CI_COMMIT_TAG_MESSAGE": facts.tag_message if facts.is_tag else None,
            "CI_COMMIT_TITLE": facts.commit_title,
            "CI_COMMIT_MESSAGE": facts.commit_message,
            "CI_COMMIT_DESCRIPTION": facts.commit_description,
            "CI_COMMIT_TIMESTAMP": facts.commit_timestamp,
            "CI_COMMIT_AUTHOR": facts.commit_author,
            "CI_DEFAULT_BRANCH": facts.default_branch,
            "CI_DEFAULT_BRANCH_SLUG": slugify(facts.default_branch),
            "CI_PROJECT_ID": "1",
            "CI_PROJECT_NAME": facts.project_name,
            "CI_PROJECT_TITLE": facts.project_name,
            "CI_PROJECT_DESCRIPTION": "",
            "CI_PROJECT_PATH": facts.project_path,
            "CI_PROJECT_PATH_SLUG": slugify(facts.project_path),
            "CI_PROJECT_NAMESPACE": facts.project_namespace,
            "CI_PROJECT_NAMESPACE_SLUG": slugify(facts.project_namespace),
            "CI_PROJECT_ROOT_NAMESPACE": facts.project_namespace.split("/")[0],
            "CI_PROJECT_URL": facts.project_url,
            "CI_PROJECT_VISIBILITY": "private",
            "CI_REPOSITORY_URL": facts.repository_url,
            "GITLAB_USER_ID": "1",
            "GITLAB_USER_NAME": facts.user_name,
            "GITLAB_USER_EMAIL": facts.user_email,
            "GITLAB_USER_LOGIN": facts.user_login,
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": facts.ref_name if merge_request else None,
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": facts.default_branch if merge_request else None,
        }
    )


def job_variables(
    facts: GitFacts,
    *,
    job_name: str,
    stage: str,
    node_index: int | None,
    node_total: int | None,
    project_dir_in_job: str,
    builds_dir: str,
    job_id: int = 1,
    started_at: str | None = None,
    manual: bool = False,
    image: str | None = None,
    runner_version: str = "0.1.0",
    disposable: bool = True,
) -> list[Variable]:
    """The job's own predefined variables (what gitlab-runner and GitLab add per job)."""
    return _vars(
        {
            "CI_JOB_ID": str(job_id),
            "CI_JOB_NAME": job_name,
            "CI_JOB_NAME_SLUG": slugify(job_name),
            "CI_JOB_STAGE": stage,
            "CI_JOB_URL": f"{facts.project_url}/-/jobs/{job_id}",
            "CI_JOB_STARTED_AT": started_at or _now(),
            "CI_JOB_MANUAL": "true" if manual else None,
            "CI_JOB_IMAGE": image,
            "CI_NODE_INDEX": str(node_index) if node_index is not None else None,
            "CI_NODE_TOTAL": str(node_total if node_total is not None else 1),
            "CI_BUILDS_DIR": builds_dir,
            "CI_PROJECT_DIR": project_dir_in_job,
            "CI_CONCURRENT_ID": "0",
            "CI_CONCURRENT_PROJECT_ID": "0",
            "CI_RUNNER_ID": "1",
            "CI_RUNNER_DESCRIPTION": "pyci",
            "CI_RUNNER_TAGS": "[]",
            "CI_RUNNER_VERSION": runner_version,
            "CI_RUNNER_REVISION": "local",
            "CI_RUNNER_SHORT_TOKEN": "pyci",
            "CI_RUNNER_EXECUTABLE_ARCH": _arch(),
            # set by executors that throw the environment away (container, not shell)
            "CI_DISPOSABLE_ENVIRONMENT": "true" if disposable else None,
        }
    )


def _arch() -> str:
    import platform

    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
    return f"linux/{arch}"
