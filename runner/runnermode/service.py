"""The runner's loop: ask GitLab for jobs, run up to `concurrent` at once, stop when told.

`POST /jobs/request` answers (lib/api/ci/runner.rb):
- 201: a job; it runs on a thread of its own and the loop asks again at once (a busy queue
  drains quickly);
- 204: none; `X-GitLab-Last-Update` is sent back next time and the loop waits
  `check_interval` (jittered, so many boxes do not ask in step);
- 409: the job was taken by another runner in between: ask again soon;
- 403: the token is not valid: the runner stops (nothing will change that);
- 422 and 5xx, or no answer: back off, doubling up to a minute, jittered.

Stopping: `stop(graceful=True)` (SIGQUIT) stops asking and lets running jobs finish;
`stop(graceful=False)` (SIGTERM, SIGINT) also cancels them (GitLab is told they failed:
runner_system_failure). Either way the loop returns once the last job has reported.
"""

from __future__ import annotations

import logging
import platform
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.gitlab.errors import GitLabError
from runner.gitlab.runner_api import RunnerAPI
from runner.runnermode.job import JobResult, JobSettings, ReceivedJob, sweep_leftovers

log = logging.getLogger(__name__)

VERSION = "0.1.0"
MAX_BACKOFF = 60.0
CONFLICT_DELAY = 0.5
# what pyci really supports of GitLab's runner features (gitlab-runner's FeaturesInfo)
FEATURES = {
    "variables": True,
    "image": True,
    "services": True,
    "artifacts": True,
    "cache": True,
    "shared": False,
    "upload_multiple_artifacts": True,
    "upload_raw_artifacts": False,
    "session": False,
    "terminal": False,
    "refspecs": True,
    "masking": True,
    "proxy": False,
    "raw_variables": True,
    "artifacts_exclude": True,
    "multi_build_steps": False,
    "trace_reset": False,
    "trace_checksum": True,
    "trace_size": True,
    "vault_secrets": False,
    "cancelable": True,
    "return_exit_code": True,
    "service_variables": True,
    "fallback_cache_keys": True,
}


@dataclass(frozen=True)
class ServiceSettings:
    name: str
    executor: str
    concurrent: int = 1
    check_interval: float = 3.0
    max_builds: int | None = None  # run-single: stop after this many jobs
    wait_timeout: float | None = None  # run-single: stop after this long without a job


def runner_info(settings: ServiceSettings) -> dict[str, object]:
    return {
        "name": settings.name,
        "version": VERSION,
        "revision": "pyci",
        "platform": platform.system().lower(),
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
            platform.machine(), platform.machine()
        ),
        "executor": settings.executor,
        "shell": "bash",
        "features": FEATURES,
    }


@dataclass
class RunnerService:
    api: RunnerAPI
    settings: ServiceSettings
    job_settings: JobSettings
    announce: Callable[[str], None] = print  # one line per job start and end
    # the box's `concurrent`, shared by every runner it serves (None: only ours counts)
    capacity: threading.Semaphore | None = None
    results: list[JobResult] = field(default_factory=list)
    fatal: str | None = None
    _running: dict[int, ReceivedJob] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stopping: bool = False
    _graceful: bool = True
    _last_activity: float = field(default_factory=time.monotonic)

    def stop(self, graceful: bool) -> None:
        """Stop asking for jobs; without `graceful`, cancel the running ones. Signal-safe:
        it only sets flags and events."""
        self._stopping = True
        if not graceful:
            self._graceful = False
            for job in list(self._running.values()):
                job.cancel("shutdown")
        self._wake.set()

    def serve(self) -> None:
        """Run until stopped, `max_builds` jobs were taken, `wait_timeout` passed idle, or the
        token is refused; returns once every job has reported."""
        sweep_leftovers(self.job_settings)
        started = 0
        last_update: str | None = None
        backoff = 0.0
        info = runner_info(self.settings)
        limit = self.settings.max_builds
        while not self._stopping and self.fatal is None:
            if limit is not None and started >= limit:
                break
            if len(self._running) >= self.settings.concurrent:
                self._wait(None)
                continue
            if self._idle_too_long():
                break
            if self.capacity is not None and not self.capacity.acquire(timeout=_jitter(1.0)):
                continue  # the box is full: other runners' jobs hold every slot
            try:
                answer = self.api.request_job(info, last_update)
            except GitLabError as exc:
                self._release_capacity()
                backoff = _next_backoff(backoff)
                log.warning("requesting a job: %s; again in %.1fs", exc, backoff)
                self._wait(backoff)
                continue
            if answer.status == 201:
                backoff = 0.0
                started += 1
                self._start(answer.job)  # the job's thread releases the capacity it holds
                continue
            self._release_capacity()
            if answer.status == 204:
                backoff = 0.0
                last_update = answer.last_update or last_update
                self._wait(_jitter(self.settings.check_interval))
                continue
            if answer.status == 403:
                self.fatal = "the server refused the runner token (403 Forbidden)"
                break
            if answer.status == 409:
                self._wait(_jitter(CONFLICT_DELAY))
                continue
            backoff = _next_backoff(backoff)
            log.warning("requesting a job: HTTP %s; again in %.1fs", answer.status, backoff)
            self._wait(backoff)
        self._drain()

    # -- internals --------------------------------------------------------------------------
    def _idle_too_long(self) -> bool:
        timeout = self.settings.wait_timeout
        if timeout is None or self._running:
            return False
        return time.monotonic() - self._last_activity >= timeout

    def _wait(self, seconds: float | None) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _start(self, payload: object) -> None:
        job = ReceivedJob(self.api, payload, self.job_settings)
        key = id(job)
        with self._lock:
            self._running[key] = job
            self._last_activity = time.monotonic()
        if not self._graceful:
            job.cancel("shutdown")
        thread = threading.Thread(target=self._run, args=(key, job), name="job", daemon=True)
        thread.start()

    def _run(self, key: int, job: ReceivedJob) -> None:
        job_id = job.payload.get("id") if isinstance(job.payload, dict) else None
        name = _job_name(job.payload)
        self.announce(f"job {job_id} ({name}): started")
        try:
            result = job.run()
        finally:
            with self._lock:
                del self._running[key]
                self._last_activity = time.monotonic()
            self._release_capacity()
            self._wake.set()
        with self._lock:
            self.results.append(result)
        reason = f" ({result.failure_reason})" if result.failure_reason else ""
        told = "" if result.accepted else ", not acknowledged by the server"
        self.announce(f"job {job_id} ({name}): {result.state}{reason}{told}")

    def _release_capacity(self) -> None:
        if self.capacity is not None:
            self.capacity.release()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._running:
                    return
            self._wait(None)


def _job_name(payload: object) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("job_info"), dict):
        return str(payload["job_info"].get("name") or "?")
    return "?"


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)


def _next_backoff(current: float) -> float:
    return _jitter(min(MAX_BACKOFF, max(1.0, current * 2)))
