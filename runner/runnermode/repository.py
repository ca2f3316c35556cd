"""Get the job's sources from the GitLab server, as gitlab-runner's get_sources does.

Each project has a repository on the build box (`<builds>/<runner>/<slot>/<project path>`),
reused between jobs: `GIT_STRATEGY=fetch` fetches into it, `clone` starts it afresh, `none` and
`empty` leave it alone (the build then gives the job an empty project dir). It is fetched at
the job's `sha` with GitLab's `refspecs` and depth (`GIT_DEPTH` overrides), checked out
detached at that sha (the build's own get_sources then makes the job's private view of it, and
honours `GIT_CHECKOUT`), and cleaned with `GIT_CLEAN_FLAGS` (default `-ffdx`); with
`GIT_SUBMODULE_STRATEGY`, its submodules are fetched too.

The job token of `git_info.repo_url` never lands on disk or in a log: the remote's URL is
stored without it, and the credential goes to git as an `http.extraHeader` through git's
`GIT_CONFIG_*` environment (not the command line, which any user can read in /proc).
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from git import Repo
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from runner.build.joblog import BuildLog
from runner.runnermode.payload import RunnerJob

DEFAULT_CLEAN_FLAGS = "-ffdx"


class RepositoryError(Exception):
    """The repository could not be fetched or checked out."""


def sanitized_url(url: str) -> str:
    """`url` without its user and password."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def project_path(job: RunnerJob) -> str:
    """`group/project` from the repository URL (`…/group/project.git`)."""
    path = urlsplit(job.git.repo_url).path.strip("/")
    path = path[: -len(".git")] if path.endswith(".git") else path
    return path or f"project-{job.project_id}"


def _credential_env(url: str) -> dict[str, str]:
    """git's environment: no prompt, no stored credentials, the URL's credential as a header."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
    }
    parts = urlsplit(url)
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        header = "Authorization: Basic " + base64.b64encode(pair.encode()).decode()
        # `http.<url>.*` applies to that server only: a submodule hosted elsewhere never
        # receives the job token
        origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        env.update(
            {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_1": f"http.{origin}/.extraHeader"},
            GIT_CONFIG_VALUE_1=header,
        )
    return env


def strategy_of(job: RunnerJob) -> str:
    written = job.spec.variable("GIT_STRATEGY")
    if written:
        return written.lower()
    return "fetch" if job.allow_git_fetch else "clone"


def fetch_sources(job: RunnerJob, repo_dir: Path, log: BuildLog) -> None:
    """Make `repo_dir` the project's repository at the job's sha (see the module doc)."""
    strategy = strategy_of(job)
    if strategy in ("none", "empty"):
        repo_dir.mkdir(parents=True, exist_ok=True)
        return
    url = job.git.repo_url
    env = _credential_env(url)
    repo = _open_or_init(repo_dir, fresh=strategy == "clone", log=log)
    with repo.config_writer() as config:
        config.set_value('remote "origin"', "url", sanitized_url(url))
        config.set_value("gc", "auto", "0")  # job views borrow these objects (alternates)
    depth = _depth(job)
    if depth:
        log.notice(f"Fetching changes with git depth set to {depth}...")
    else:
        log.notice("Fetching changes...")
    refspecs = job.git.refspecs or _default_refspecs(job)
    args = ["fetch", "--prune", "--quiet", "--no-recurse-submodules"]
    if depth:
        args += ["--depth", str(depth)]
    args += shlex.split(job.spec.variable("GIT_FETCH_EXTRA_FLAGS") or "")
    args += ["origin", *refspecs]
    _run(repo, args, env, f"fetching {sanitized_url(url)}")
    sha = job.git.sha
    log.notice(f"Checking out {sha[:8]} as detached HEAD (ref is {job.git.ref})...")
    _run(repo, ["checkout", "--force", "--quiet", "--detach", sha], env, f"checking out {sha}")
    flags = job.spec.variable("GIT_CLEAN_FLAGS") or DEFAULT_CLEAN_FLAGS
    if flags.strip().lower() != "none":
        _run(repo, ["clean", *shlex.split(flags)], env, "cleaning the work tree")
    _update_submodules(job, repo, env, flags)


def _update_submodules(job: RunnerJob, repo: Repo, env: dict[str, str], clean: str) -> None:
    """`GIT_SUBMODULE_STRATEGY` normal or recursive: the submodules fetched from the server
    (URLs relative to the project's resolve against its remote, so the job token's header,
    scoped to the server, goes with them and nowhere else), at the commits the job's tree
    records, as gitlab-runner does. `GIT_SUBMODULE_PATHS`, `GIT_SUBMODULE_DEPTH` and
    `GIT_SUBMODULE_UPDATE_FLAGS` as GitLab documents them. The build then gives the job a
    copy of them (runner/build/sources.py)."""
    strategy = (job.spec.variable("GIT_SUBMODULE_STRATEGY") or "none").lower()
    if strategy not in ("normal", "recursive"):
        return
    recursive = ["--recursive"] if strategy == "recursive" else []
    paths = shlex.split(job.spec.variable("GIT_SUBMODULE_PATHS") or "")
    update = ["submodule", "update", "--init", "--force", *recursive]
    depth = job.spec.variable("GIT_SUBMODULE_DEPTH")
    if depth and depth.strip().isdigit() and int(depth) > 0:
        update += ["--depth", depth.strip()]
    update += shlex.split(job.spec.variable("GIT_SUBMODULE_UPDATE_FLAGS") or "")
    _run(repo, ["submodule", "sync", *recursive, "--", *paths], env, "syncing submodules")
    _run(repo, [*update, "--", *paths], env, "updating submodules")
    if clean.strip().lower() != "none":
        command = ["submodule", "foreach", *recursive, f"git clean {clean}"]
        _run(repo, command, env, "cleaning the submodules")


def _open_or_init(repo_dir: Path, *, fresh: bool, log: BuildLog) -> Repo:
    if not fresh:
        try:
            repo = Repo(repo_dir)
            if Path(repo.git_dir).resolve() == (repo_dir / ".git").resolve():
                log.line(f"Reinitialized existing Git repository in {repo_dir}/.git/")
                return repo
        except (InvalidGitRepositoryError, NoSuchPathError):
            pass
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    repo_dir.mkdir(parents=True)
    log.line(f"Initialized empty Git repository in {repo_dir}/.git/")
    repo = Repo.init(repo_dir)
    repo.create_remote("origin", "placeholder")  # its URL is set (sanitized) right after
    return repo


def _depth(job: RunnerJob) -> int:
    written = job.spec.variable("GIT_DEPTH")
    if written and written.strip().isdigit():
        return int(written)
    return job.git.depth


def _default_refspecs(job: RunnerJob) -> list[str]:
    ref = job.git.ref
    if not ref:
        return []
    if job.git.ref_type == "tag":
        return [f"+refs/tags/{ref}:refs/tags/{ref}"]
    return [f"+refs/heads/{ref}:refs/remotes/origin/{ref}"]


def _run(repo: Repo, args: list[str], env: dict[str, str], what: str) -> None:
    try:
        repo.git.execute(["git", *args], env={**os.environ, **env})
    except GitCommandError as exc:
        stderr = (exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
        last = stderr.splitlines()[-1] if stderr else f"exit code {exc.status}"
        raise RepositoryError(f"{what}: {last}") from None
