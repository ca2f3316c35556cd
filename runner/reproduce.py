"""`pyci reproduce JOB_URL`: what a job of a GitLab pipeline was, read through the API, and
what pyci needs to run it again here.

The steps, each a function below: read the job, its pipeline and (for a merge request
pipeline) its merge request (`read_original`); turn them into the git facts and predefined
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runner.errors import PyciError, UsageError
from runner.gitlab.client import GitLabClient, GitLabError

_JOB_PATH = re.compile(r"^/(?P<project>.+?)/-/jobs/(?P<id>[0-9]+)/?$")
_MR_REF = re.compile(r"^refs/merge-requests/(?P<iid>[0-9]+)/(head|merge|train)$")
# what gitlab-runner writes at the end of a failed job's log, and when it pulls an image
_EXIT_LINE = re.compile(r"ERROR: Job failed: exit code (?P<code>[0-9]+)")
_DIGEST_LINE = re.compile(r"with digest (?P<ref>\S+@(?P<digest>sha256:[0-9a-f]{64}))")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ReproduceError(PyciError):
    """The job cannot be reproduced here (its commit is missing, it is not in the pipeline)."""


@dataclass(frozen=True)
class JobAddress:
    server_url: str  # https://gitlab.example.com
    project: str  # group/proj
    job_id: int


@dataclass(frozen=True)
class OriginalJob:
    """What the API tells of the job and its pipeline."""

    address: JobAddress
    name: str
    stage: str
    status: str
    failure_reason: str | None
    ref: str
    is_tag: bool
    sha: str
    before_sha: str
    pipeline_id: int
    pipeline_source: str
    project_id: int
    web_url: str
    pipeline_url: str
    # KEY -> value of the variables the pipeline was run with; None when the token may not
    # read them (they need the Maintainer role)
    pipeline_variables: dict[str, str] | None
    merge_request: dict[str, Any] | None  # the MR of a merge request pipeline
    exit_code: int | None  # as the original log ends: `ERROR: Job failed: exit code N`
    image_digest: str | None  # `image@sha256:...` the original pulled, from its log


def parse_job_url(url: str) -> JobAddress:
    """`https://host[:port]/group/proj/-/jobs/123` -> its parts."""
    parts = urlsplit(url)
    match = _JOB_PATH.match(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or match is None:
        raise UsageError(f"{url!r}: expected a job URL, https://HOST/GROUP/PROJECT/-/jobs/ID")
    return JobAddress(f"{parts.scheme}://{parts.netloc}", match["project"], int(match["id"]))


def read_original(client: GitLabClient, address: JobAddress) -> OriginalJob:
    project, job_id = address.project, address.job_id
    job = client.job(project, job_id)
    pipeline_facts = job.get("pipeline") or {}
    pipeline_id = int(pipeline_facts.get("id") or 0)
    pipeline = client.pipeline(project, pipeline_id)
    try:
        listed = client.pipeline_variables(project, pipeline_id)
        variables: dict[str, str] | None = {
            str(v["key"]): str(v.get("value") or "") for v in listed if "key" in v
        }
    except GitLabError as exc:
        if exc.status not in (401, 403):
            raise
        variables = None
    ref = str(pipeline.get("ref") or job.get("ref") or "")
    merge_request = None
    mr_ref = _MR_REF.match(ref)
    if mr_ref is not None:
        merge_request = client.merge_request(project, int(mr_ref["iid"]))
    trace = _ANSI.sub("", client.job_trace(project, job_id))
    exit_match = _EXIT_LINE.search(trace)
    digest_match = _DIGEST_LINE.search(trace)
    return OriginalJob(
        address=address,
        name=str(job["name"]),
        stage=str(job.get("stage") or ""),
        status=str(job.get("status") or ""),
        failure_reason=job.get("failure_reason"),
        ref=ref,
        is_tag=bool(pipeline.get("tag", job.get("tag", False))),
        sha=str(pipeline.get("sha") or (job.get("commit") or {}).get("id") or ""),
        before_sha=str(pipeline.get("before_sha") or "0" * 40),
        pipeline_id=pipeline_id,
        pipeline_source=str(pipeline.get("source") or "push"),
        project_id=int(pipeline.get("project_id") or pipeline_facts.get("project_id") or 0),
        web_url=str(job.get("web_url") or ""),
        pipeline_url=str(pipeline.get("web_url") or ""),
        pipeline_variables=variables,
        merge_request=merge_request,
        exit_code=int(exit_match["code"]) if exit_match else None,
        image_digest=digest_match["ref"] if digest_match else None,
    )


def original_facts(facts: Any, original: OriginalJob) -> Any:
    """The checkout's git facts with the original pipeline's ref: rules, `only`/`except` and
    the predefined variables then see the branch, tag or merge request it ran for."""
    from runner.evaluate.predefined import slugify

    ref = original.ref
    if original.merge_request is not None:
        ref = str(original.merge_request.get("source_branch") or ref)
    return dataclasses.replace(
        facts,
        ref_name=ref,
        ref_slug=slugify(ref),
        is_tag=original.is_tag,
        is_branch=not original.is_tag,
        before_sha=original.before_sha,
    )


def predefined_overrides(original: OriginalJob) -> dict[str, str]:
    """The predefined variables that pipeline had and pyci cannot know from git alone. They
    go in as pipeline variables, the highest level, as GitLab set them for the job."""
    values = {
        "CI_PIPELINE_SOURCE": original.pipeline_source,
        "CI_PIPELINE_ID": str(original.pipeline_id),
        "CI_PIPELINE_URL": original.pipeline_url,
        "CI_JOB_ID": str(original.address.job_id),
        "CI_JOB_URL": original.web_url,
        "CI_PROJECT_ID": str(original.project_id),
        "CI_COMMIT_BEFORE_SHA": original.before_sha,
    }
    mr = original.merge_request
    if mr is not None:
        values.update(
            {
                "CI_MERGE_REQUEST_IID": str(mr.get("iid", "")),
                "CI_MERGE_REQUEST_ID": str(mr.get("id", "")),
                "CI_MERGE_REQUEST_TITLE": str(mr.get("title", "")),
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": str(mr.get("source_branch", "")),
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": str(mr.get("target_branch", "")),
                "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": original.sha,
                "CI_MERGE_REQUEST_PROJECT_PATH": original.address.project,
                "CI_MERGE_REQUEST_REF_PATH": original.ref,
            }
        )
    return {key: value for key, value in values.items() if value}


@contextlib.contextmanager
def checkout_at(directory: Path, sha: str, log: Any) -> Iterator[Path]:
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
    original: OriginalJob,
    names: tuple[str, ...],
    store: Any,
    log: Any,
) -> list[str]:
    """Put the artifacts of the jobs named `names` (of the original pipeline) into `store`;
    return the names of those that have none to download."""
    project = original.address.project
    jobs = client.pipeline_jobs(project, original.pipeline_id)
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
            count = store.import_archive(name, archive, origin=origin, commit=original.sha)
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
    unreadable: list[str],
) -> list[str]:
    """What differs from the original run, as far as pyci can tell."""
    found = list(unreadable)
    if original.pipeline_variables is None:
        found.append(
            "the pipeline's own variables could not be read (they need the Maintainer role): "
            "set them with --variable KEY=VALUE"
        )
    if original.exit_code is not None and exit_code != original.exit_code:
        found.append(
            f"exit code: the original failed with {original.exit_code}, here "
            + (f"{exit_code}" if exit_code is not None else status)
        )
    elif original.status == "failed" and status == "success":
        found.append("the original failed, here the job passed")
    elif original.status == "success" and status == "failed":
        found.append("the original passed, here the job failed")
    if original.image_digest and image_digest:
        theirs = original.image_digest.rpartition("@")[2]
        if theirs != image_digest.rpartition("@")[2]:
            found.append(f"image: the original ran {original.image_digest}, here {image_digest}")
    return found
