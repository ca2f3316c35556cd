"""`pyci reproduce JOB_URL`: what a job of a GitLab pipeline was, read through the API, and
what pyci needs to run it again here.

The steps, each a function below: read the job (`read_job`), its pipeline and (for a merge
request pipeline) its merge request (`read_pipeline`); turn them into the git facts and predefined
variables of that pipeline (`original_facts`, `predefined_overrides`); make sure a working
tree sits at the job's commit (`checkout_at`); download the artifacts of the jobs it depended
on into the artifact store (`download_dependencies`); after the run, say what differs from
the original where pyci can tell (`differences`). The command (runner/commands/reproduce.py)
strings them together and runs the job with `pyci run`'s machinery.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.core.errors import PyciError, UsageError
from runner.gitlab.client import GitLabClient
from runner.gitlab.errors import GitLabError
from runner.gitlab.server import Server
from runner.vars.model import SettingsVariable, VariableProblem, from_fields

if TYPE_CHECKING:
    from runner.build.artifacts import ArtifactStore
    from runner.core.jobspec import JobSpec
    from runner.evaluate.predefined import GitFacts

_URL_PATH = re.compile(r"^/(?P<project>.+?)/-/(?P<kind>jobs|pipelines)/(?P<id>[0-9]+)/?$")
_MR_REF = re.compile(r"^refs/merge-requests/(?P<iid>[0-9]+)/(head|merge|train)$")
# what gitlab-runner writes at the end of a failed job's log, and when it pulls an image
_EXIT_LINE = re.compile(r"ERROR: Job failed: exit code (?P<code>[0-9]+)")
_DIGEST_LINE = re.compile(r"with digest (?P<ref>\S+@(?P<digest>sha256:[0-9a-f]{64}))")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ReproduceError(PyciError):
    """The job cannot be reproduced here (its commit is missing, it is not in the pipeline)."""


@dataclass(frozen=True)
class Address:
    """A job's or a pipeline's page on GitLab."""

    server_url: str  # https://gitlab.example.com
    project: str  # group/proj
    kind: str  # "jobs" or "pipelines"
    id: int


@dataclass(frozen=True)
class OriginalPipeline:
    """What the API tells of a pipeline."""

    server_url: str
    project: str
    id: int
    ref: str
    is_tag: bool
    sha: str
    before_sha: str
    source: str
    project_id: int
    web_url: str
    # the variables it was run with; None when the token may not read them (they need the
    # Maintainer role)
    variables: tuple[SettingsVariable, ...] | None
    merge_request: dict[str, Any] | None  # the MR of a merge request pipeline

    @property
    def ref_name(self) -> str:
        """The branch or tag it ran for: a merge request pipeline's is the source branch
        (its `ref` is `refs/merge-requests/<iid>/head`)."""
        if self.merge_request is not None:
            return str(self.merge_request.get("source_branch") or self.ref)
        return self.ref


@dataclass(frozen=True)
class OriginalJob:
    """What the API tells of a job; `pipeline` is its pipeline."""

    pipeline: OriginalPipeline
    id: int
    name: str
    stage: str
    status: str
    failure_reason: str | None
    web_url: str
    exit_code: int | None  # as the original log ends: `ERROR: Job failed: exit code N`
    image_digest: str | None  # `image@sha256:...` the original pulled, from its log


def parse_url(url: str, kind: str) -> Address:
    """`https://host[:port]/group/proj/-/jobs/123` (kind `jobs`) or `.../-/pipelines/45`."""
    parts = urlsplit(url)
    match = _URL_PATH.match(parts.path)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or match is None
        or match["kind"] != kind
    ):
        what = "job" if kind == "jobs" else "pipeline"
        raise UsageError(f"{url!r}: expected a {what} URL, https://HOST/GROUP/PROJECT/-/{kind}/ID")
    return Address(f"{parts.scheme}://{parts.netloc}", match["project"], kind, int(match["id"]))


def read_pipeline(
    client: GitLabClient, server_url: str, project: str, pipeline_id: int
) -> OriginalPipeline:
    pipeline = client.pipeline(project, pipeline_id)
    try:
        listed = client.pipeline_variables(project, pipeline_id)
        variables: tuple[SettingsVariable, ...] | None = tuple(
            _pipeline_variable(entry) for entry in listed
        )
    except GitLabError as exc:
        if exc.status not in (401, 403):
            raise
        variables = None
    ref = str(pipeline.get("ref") or "")
    merge_request = None
    mr_ref = _MR_REF.match(ref)
    if mr_ref is not None:
        merge_request = client.merge_request(project, int(mr_ref["iid"]))
    return OriginalPipeline(
        server_url=server_url,
        project=project,
        id=pipeline_id,
        ref=ref,
        is_tag=bool(pipeline.get("tag", False)),
        sha=str(pipeline.get("sha") or ""),
        before_sha=str(pipeline.get("before_sha") or "0" * 40),
        source=str(pipeline.get("source") or "push"),
        project_id=int(pipeline.get("project_id") or 0),
        web_url=str(pipeline.get("web_url") or ""),
        variables=variables,
        merge_request=merge_request,
    )


def _pipeline_variable(entry: dict[str, Any]) -> SettingsVariable:
    """A variable of the pipeline (`{key, value, variable_type}`): never masked or scoped."""
    try:
        return from_fields(
            {k: entry[k] for k in ("key", "value", "variable_type") if k in entry},
            "pipeline",
            allow_projects=False,
        )
    except VariableProblem as exc:
        raise ReproduceError(f"the pipeline's variables: {exc}") from None


def read_job(client: GitLabClient, address: Address) -> OriginalJob:
    job = client.job(address.project, address.id)
    pipeline_id = int((job.get("pipeline") or {}).get("id") or 0)
    pipeline = read_pipeline(client, address.server_url, address.project, pipeline_id)
    trace = _ANSI.sub("", client.job_trace(address.project, address.id))
    exit_match = _EXIT_LINE.search(trace)
    digest_match = _DIGEST_LINE.search(trace)
    return OriginalJob(
        pipeline=pipeline,
        id=address.id,
        name=str(job["name"]),
        stage=str(job.get("stage") or ""),
        status=str(job.get("status") or ""),
        failure_reason=job.get("failure_reason"),
        web_url=str(job.get("web_url") or ""),
        exit_code=int(exit_match["code"]) if exit_match else None,
        image_digest=digest_match["ref"] if digest_match else None,
    )


def original_facts(facts: GitFacts, pipeline: OriginalPipeline, server: Server) -> GitFacts:
    """The checkout's git facts with the original pipeline's ref, project and server: rules,
    `only`/`except` and the predefined variables then see what they saw there."""
    from urllib.parse import urlsplit as split

    from runner.evaluate.predefined import slugify

    ref = pipeline.ref_name
    parts = split(server.url)
    namespace, _, name = pipeline.project.rpartition("/")
    return dataclasses.replace(
        facts,
        ref_name=ref,
        ref_slug=slugify(ref),
        is_tag=pipeline.is_tag,
        is_branch=not pipeline.is_tag,
        before_sha=pipeline.before_sha,
        project_path=pipeline.project,
        project_namespace=namespace,
        project_name=name,
        project_url=f"{server.url}/{pipeline.project}",
        server_host=parts.hostname or facts.server_host,
        server_port=parts.port or (443 if parts.scheme == "https" else 80),
        server_protocol=parts.scheme,
    )


def predefined_overrides(pipeline: OriginalPipeline, job: OriginalJob | None) -> dict[str, str]:
    """The predefined variables that pipeline (and job) had and pyci cannot know from git.
    They go in as pipeline variables, the highest level, as GitLab set them."""
    values = {
        "CI_PIPELINE_SOURCE": pipeline.source,
        "CI_PIPELINE_ID": str(pipeline.id),
        "CI_PIPELINE_URL": pipeline.web_url,
        "CI_PROJECT_ID": str(pipeline.project_id),
        "CI_COMMIT_BEFORE_SHA": pipeline.before_sha,
    }
    if job is not None:
        values.update({"CI_JOB_ID": str(job.id), "CI_JOB_URL": job.web_url})
    mr = pipeline.merge_request
    if mr is not None:
        values.update(
            {
                "CI_MERGE_REQUEST_IID": str(mr.get("iid", "")),
                "CI_MERGE_REQUEST_ID": str(mr.get("id", "")),
                "CI_MERGE_REQUEST_TITLE": str(mr.get("title", "")),
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": str(mr.get("source_branch", "")),
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": str(mr.get("target_branch", "")),
                "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": pipeline.sha,
                "CI_MERGE_REQUEST_PROJECT_PATH": pipeline.project,
                "CI_MERGE_REQUEST_REF_PATH": pipeline.ref,
            }
        )
    return {key: value for key, value in values.items() if value}


@contextlib.contextmanager
def checkout_at(directory: Path, sha: str, log: Callable[[str], None]) -> Iterator[Path]:
    """`directory` itself when its HEAD is `sha`; else a temporary worktree of its repository
    at `sha` (detached, removed afterwards). The commit must be in the clone."""
    import git

    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ReproduceError(f"{directory}: not a git repository") from exc
    with repo:
        try:
            head = repo.head.commit.hexsha
        except ValueError:
            head = ""
        if head == sha:
            yield directory
            return
        try:
            repo.commit(sha)
        except (ValueError, git.BadName) as exc:
            raise ReproduceError(
                f"commit {sha[:12]} is not in this clone: run `git fetch` (or "
                f"`git fetch origin {sha}`) and try again"
            ) from exc
        root = Path(repo.working_tree_dir or directory)
        inside = directory.resolve().relative_to(root.resolve())
        parent = Path(tempfile.mkdtemp(prefix="pyci-reproduce-"))
        worktree = parent / root.name
        repo.git.worktree("add", "--detach", str(worktree), sha)
        log(f"checked out {sha[:12]} in a temporary worktree {worktree}")
        try:
            yield worktree / inside
        finally:
            with contextlib.suppress(git.GitCommandError):
                repo.git.worktree("remove", "--force", str(worktree))
            shutil.rmtree(parent, ignore_errors=True)
            with contextlib.suppress(git.GitCommandError):
                repo.git.worktree("prune")


def download_dependencies(
    client: GitLabClient,
    pipeline: OriginalPipeline,
    names: tuple[str, ...],
    store: ArtifactStore,
    log: Callable[[str], None],
) -> list[str]:
    """Put the artifacts of the jobs named `names` (of the original pipeline) into `store`;
    return the names of those that have none to download."""
    project = pipeline.project
    jobs = client.pipeline_jobs(project, pipeline.id)
    missing = []
    for name in names:
        runs = [job for job in jobs if job.get("name") == name]
        runs.sort(key=lambda job: int(job.get("id") or 0), reverse=True)  # a retry wins
        with_archive = [job for job in runs if _has_archive(job)]
        if not with_archive:
            missing.append(name)
            continue
        chosen = with_archive[0]
        job_id = int(chosen["id"])
        with tempfile.TemporaryFile() as archive:
            client.download_job_artifacts(project, job_id, archive)
            archive.seek(0)
            origin = str(chosen.get("web_url") or f"job {job_id}")
            count = store.import_archive(name, archive, origin=origin, commit=pipeline.sha)
        log(f"downloaded the artifacts of {name} (job {job_id}): {count} files")
    return missing


def _has_archive(job: dict[str, Any]) -> bool:
    return any(
        isinstance(a, dict) and a.get("file_type") == "archive" for a in job.get("artifacts") or ()
    )


def differences(
    original: OriginalJob,
    *,
    exit_code: int | None,
    status: str,
    image_digest: str | None,
) -> list[str]:
    """What differs from the original run of one job, as far as pyci can tell."""
    found = []
    if original.exit_code is not None and exit_code != original.exit_code:
        here = f"{exit_code}" if exit_code is not None else status
        found.append(f"exit code: the original failed with {original.exit_code}, here {here}")
    elif original.status != status and {original.status, status} <= {"success", "failed"}:
        found.append(f"status: the original {_verb(original.status)}, here the job {_verb(status)}")
    if original.image_digest and image_digest:
        theirs = original.image_digest.rpartition("@")[2]
        if theirs != image_digest.rpartition("@")[2]:
            found.append(f"image: the original ran {original.image_digest}, here {image_digest}")
    return found


# `$X` or `${X}`; `${X:-default}` and the like expect X may be unset, and are not counted
_REFERENCE = re.compile(r"\$(?:([A-Z_][A-Z0-9_]*)|\{([A-Z_][A-Z0-9_]*)\})")
_ASSIGNMENT = re.compile(r"(?:^|[\s;&|(])(?:export\s+|local\s+|readonly\s+)?([A-Z_][A-Z0-9_]*)=")
_LOOP_OR_READ = re.compile(r"\b(?:for|read(?:\s+-\w+)*)\s+([A-Z_][A-Z0-9_]*)")
# set by the shell, the image or the executor at run time, not by any CI/CD variable
_ENVIRONMENT = frozenset(
    [
        "HOME",
        "PATH",
        "PWD",
        "OLDPWD",
        "USER",
        "LOGNAME",
        "SHELL",
        "HOSTNAME",
        "TERM",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "UID",
        "EUID",
        "PPID",
        "RANDOM",
        "LINENO",
        "SECONDS",
        "IFS",
        "PS1",
        "PS2",
        "OPTARG",
        "OPTIND",
        "BASH_VERSION",
        "BASH_SOURCE",
        "FUNCNAME",
        "PIPESTATUS",
        "CI_BUILDS_DIR",
        "CI_PROJECT_DIR",
        "RUNNER_TEMP_PROJECT_DIR",
        "CI_JOB_STATUS",
    ]
)


def undefined_references(job: JobSpec) -> list[str]:
    """Upper-case variables the job's scripts use (`$X`, `${X}`) that nothing defines: no
    variable of the job, no assignment (`X=`, `export X=`, `for X`, `read X`) in its scripts,
    nothing the shell or the executor sets. The original may have had them (a CI/CD variable
    the token cannot read, `CI_JOB_TOKEN`, a dotenv report), so they are named, not guessed."""
    lines = (*job.before_script, *job.script, *job.after_script)
    text = "\n".join(lines)
    defined = {variable.key for variable in job.variables} | _ENVIRONMENT
    defined |= {match[1] for match in _ASSIGNMENT.finditer(text)}
    defined |= {match[1] for match in _LOOP_OR_READ.finditer(text)}
    used = dict.fromkeys(match[1] or match[2] for match in _REFERENCE.finditer(text))
    return [name for name in used if name not in defined]


def pipeline_differences(
    client: GitLabClient, pipeline: OriginalPipeline, outcomes: dict[str, str]
) -> list[str]:
    """Jobs whose status here is not the one of their last run in the original pipeline, and
    jobs that ran in only one of the two."""
    latest: dict[str, tuple[int, str]] = {}
    for job in client.pipeline_jobs(pipeline.project, pipeline.id):
        name, job_id = str(job.get("name")), int(job.get("id") or 0)
        if name not in latest or job_id > latest[name][0]:
            latest[name] = (job_id, str(job.get("status") or ""))
    found = []
    for name, (_, theirs) in latest.items():
        ours = outcomes.get(name)
        if ours is None:
            found.append(f"{name}: {theirs} in the original, not in this pipeline")
        elif ours != theirs:
            found.append(f"{name}: {theirs} in the original, {ours} here")
    found += [
        f"{name}: not in the original, {ours} here"
        for name, ours in outcomes.items()
        if name not in latest
    ]
    return found


def _verb(status: str) -> str:
    return {"success": "passed", "failed": "failed"}.get(status, status)
