"""One job received from GitLab, from its payload to the final `PUT /jobs/:id`.

    parse the payload → start sending the trace → fetch the sources from the server →
    download the dependencies' artifacts → `run_build` (the same build as local runs, in a
    fresh executor) → upload the artifacts → send the rest of the trace → report the end

A malformed payload, a repository that cannot be fetched, an artifact that cannot be moved:
each fails this job with a system failure on GitLab, never the runner. The job's state (its
artifact store) lives in a directory of its own, removed at the end; its project's repository
and cache stay on the box for the next job of that project.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from executors.base import Executor
from runner.build import workspace
from runner.build.artifacts import ArtifactStore
from runner.build.build import run_build
from runner.build.context import BuildContext
from runner.build.joblog import BuildLog
from runner.build.masking import Masker
from runner.core.events import JobOutcome
from runner.gitlab.errors import GitLabError
from runner.gitlab.runner_api import RunnerAPI
from runner.runnermode.credentials import with_registry_credentials
from runner.runnermode.payload import PayloadError, RunnerJob, job_identity, parse_job
from runner.runnermode.repository import RepositoryError, fetch_sources, project_path
from runner.runnermode.trace import TraceBuffer, TraceSender, checksum
from runner.runnermode.transfer import ArtifactsError, download_dependencies, upload_stored

FINAL_UPDATE_ATTEMPTS = 30
RETRY_DELAY = 1.0  # seconds between final updates the server did not accept (202, 5xx)
MAX_RETRY_DELAY = 10.0  # whatever interval the server asks for


@dataclass(frozen=True)
class JobSettings:
    """What the runner gives every job it runs."""

    builds_dir: Path  # repositories (per project and slot) and job state
    cache_dir: Path  # caches, per project
    make_executor: Callable[[], Executor]
    default_timeout: float = 3600.0
    trace_interval: float = 3.0
    slots: int = 1  # repositories per project: one per job that may run at once
    secrets: tuple[str, ...] = ()  # the runner's own token: never in a trace


@dataclass
class JobResult:
    """What GitLab was told."""

    job_id: int | None
    state: str  # success | failed
    failure_reason: str | None = None
    exit_code: int | None = None
    accepted: bool = False
    trace_bytes: int = 0
    checksum: str = ""


# the build's failure reasons in GitLab's names (gitlab-runner's JobFailureReason)
GITLAB_REASONS = {
    "script_failure": "script_failure",
    "job_execution_timeout": "job_execution_timeout",
    "runner_system_failure": "runner_system_failure",
    "image_pull_failure": "image_pull_failure",
    "out_of_memory": "script_failure",  # an OOM kill is the script's exit, as on Docker
    "canceled": "job_canceled",
}


@dataclass
class ReceivedJob:
    """A job being run; `cancel(reason)` may be called from any thread."""

    api: RunnerAPI
    payload: Any
    settings: JobSettings
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel_event.set()

    def run(self) -> JobResult:
        identity = job_identity(self.payload)
        if identity is None:
            return JobResult(None, "failed", "runner_system_failure")
        job_id, token = identity
        buffer = TraceBuffer((token, *self.settings.secrets))
        masker = Masker((token, *self.settings.secrets))
        log = BuildLog(f"job {job_id}", buffer, masker, None)
        sender = TraceSender(
            self.api, job_id, token, buffer, self.cancel, self.settings.trace_interval
        )
        sender.start()
        try:
            state, reason, exit_code = self._run(job_id, log, buffer)
        except Exception:
            # a bug of ours: its traceback goes to the runner's stderr, and GitLab still
            # learns that the job failed (the runner itself carries on)
            traceback.print_exc()
            log.error("Job failed (system failure): an internal error of pyci")
            state, reason, exit_code = "failed", "runner_system_failure", None
        finally:
            log.close()
            buffer.close()
            sender.stop()
        return self._finish(job_id, token, sender, state, reason, exit_code)

    def _run(
        self, job_id: int, log: BuildLog, buffer: TraceBuffer
    ) -> tuple[str, str | None, int | None]:
        try:
            job = parse_job(self.payload)
        except PayloadError as exc:
            log.error(f"Job failed (system failure): the job's payload: {exc}")
            return "failed", "runner_system_failure", None
        try:
            holder = lock_job_state_dir(self.settings, job_id)
        except OSError as exc:
            log.error(f"Job failed (system failure): the job's state directory: {exc}")
            return "failed", "runner_system_failure", None
        state_dir = holder.path
        try:
            slot = self._lock_slot(job)
        except OSError as exc:
            holder.remove()
            log.error(f"Job failed (system failure): the project's repository: {exc}")
            return "failed", "runner_system_failure", None
        try:
            store = ArtifactStore(state_dir)
            try:
                with _section(log, "get_sources_from_server", "Fetching the repository"):
                    fetch_sources(job, slot.path, log)
                upstream: tuple[str, ...] = ()
                if job.dependencies:
                    with _section(log, "download_artifacts", "Downloading artifacts"):
                        upstream = download_dependencies(self.api, job, store, log)
            except (RepositoryError, ArtifactsError, OSError) as exc:
                log.error(f"Job failed (system failure): {exc}")
                return "failed", "runner_system_failure", None
            outcome = self._build(job, slot.path, state_dir, upstream, buffer)
            state, reason, exit_code = self._state_of(outcome)
            try:
                upload_stored(self.api, job, store, log)
            except (ArtifactsError, OSError) as exc:
                log.error(f"Uploading artifacts failed: {exc}")
                if state == "success":
                    return "failed", "runner_system_failure", None
            return state, reason, exit_code
        finally:
            slot.release()
            holder.remove()

    def _build(
        self,
        job: RunnerJob,
        repo_dir: Path,
        state_dir: Path,
        upstream: tuple[str, ...],
        buffer: TraceBuffer,
    ) -> JobOutcome:
        spec = with_registry_credentials(job.spec, job.credentials)
        if upstream != spec.dependencies:
            spec = replace(spec, dependencies=upstream)
        context = BuildContext(
            project_dir=repo_dir,
            state_dir=state_dir,
            upstream=upstream,
            default_timeout=self.settings.default_timeout,
            builds_root=self.settings.builds_dir / "jobs",
            cache_dir=self.settings.cache_dir / str(job.project_id),
        )
        return run_build(spec, self.settings.make_executor(), context, buffer, self.cancel_event)

    def _state_of(self, outcome: JobOutcome) -> tuple[str, str | None, int | None]:
        if outcome.status == "success":
            return "success", None, outcome.exit_code
        if outcome.status == "canceled" and self.cancel_reason == "shutdown":
            return "failed", "runner_system_failure", outcome.exit_code
        reason = GITLAB_REASONS.get(outcome.failure_reason or "", "unknown_failure")
        return "failed", reason, outcome.exit_code

    def _finish(
        self,
        job_id: int,
        token: str,
        sender: TraceSender,
        state: str,
        reason: str | None,
        exit_code: int | None,
    ) -> JobResult:
        data = sender.buffer.data()
        result = JobResult(job_id, state, reason, exit_code, False, len(data), checksum(data))
        body: dict[str, Any] = {
            "state": state,
            "checksum": result.checksum,
            "output": {"checksum": result.checksum, "bytesize": len(data)},
        }
        if reason:
            body["failure_reason"] = reason
        if exit_code is not None:
            body["exit_code"] = exit_code
        # GitLab checks the final update against the trace it holds: the whole trace first
        for _ in range(FINAL_UPDATE_ATTEMPTS):
            if sender.sent >= len(data) or sender.send_pending() or sender.gone:
                break
            time.sleep(RETRY_DELAY)
        for _ in range(FINAL_UPDATE_ATTEMPTS):
            try:
                answer = self.api.update_job(job_id, token, body)
            except GitLabError:
                time.sleep(RETRY_DELAY)  # the network: try again
                continue
            if answer.status == 200:
                result.accepted = True
                break
            if answer.status in (403, 404, 410, 412):
                break  # the job is no longer ours (canceled, erased): nothing to tell
            # 202: GitLab still checks the trace; 5xx: try again
            time.sleep(min(answer.update_interval or RETRY_DELAY, MAX_RETRY_DELAY))
        return result

    # -- the box's directories -------------------------------------------------------------
    def _lock_slot(self, job: RunnerJob) -> _Slot:
        """The first of the project's repositories no other job of this box holds."""
        project = project_path(job)
        for index in range(max(self.settings.slots, 1) * 4):
            path = self.settings.builds_dir / "repos" / str(index) / project
            lock_path = path.with_name(path.name + ".lock")
            lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            return _Slot(path, fd)
        raise OSError(f"no free repository slot for {project}")


def jobs_state_root(settings: JobSettings) -> Path:
    """Where each job's state directory is made. Not made here: `workspace.lock_new_dir`
    makes it, and retries when the last job to end removes it at that moment (as an empty
    parent, `LockedDir.remove`). A plain `mkdir(exist_ok=True)` raced with that removal: it
    raises FileExistsError when the directory goes between its EEXIST and its own check."""
    return settings.builds_dir / "state"


def lock_job_state_dir(settings: JobSettings, job_id: int) -> workspace.LockedDir:
    """A new state directory for the job (its artifact store), locked while the job runs: a
    runner restarted after a crash sweeps the unlocked ones."""
    return workspace.lock_new_dir(jobs_state_root(settings), f"job-{job_id}-")


def sweep_leftovers(settings: JobSettings) -> None:
    """What a runner killed mid-job left: job state dirs no running job holds. (Job
    workspaces are swept by the build, containers by the container runtime's recovery.)"""
    workspace.sweep_stale(jobs_state_root(settings))


@dataclass
class _Slot:
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@contextlib.contextmanager
def _section(log: BuildLog, name: str, header: str) -> Iterator[None]:
    """A section of the trace around what runner mode does itself."""
    log.section_start(name, header)
    try:
        yield
    finally:
        log.section_end(name)
