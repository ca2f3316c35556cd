"""The ready-set loop: start each job as soon as what it waits for is done, N at a time.

One thread (the caller's, normally the main thread so that it can take Ctrl-C) owns all state.
It asks `release.decide` about every job still waiting, starts released jobs on worker threads
up to `concurrency`, and folds finished jobs back in from a queue. Workers only run a job (with
its retries) and report its outcome; they never touch the shared state. Nothing here forks:
executors start their processes themselves.

Cancellation: setting `Scheduler.cancel` (the SIGINT handler does) cancels every running job
through its own cancel event, marks every job not yet started as canceled, waits for the
running ones to wind down (their after_script still runs), and ends with status "canceled".

Failures of pyci itself: whatever a job's thread raises (a bug in the build, a reporter that
cannot write the job's log) becomes that job's failure with reason `runner_system_failure`,
its traceback in the job's log (or, when the log is what failed, on stderr: unlogged.py); the
thread always hands an outcome back, so the loop never waits for a job that will not come.
A reporter that fails on the loop's own thread (a job's last log line) is reported the same
way and the run goes on.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from runner.core.events import (
    JobFinished,
    JobOutcome,
    JobQueued,
    JobStarted,
    JobStatus,
    LogChunk,
    PipelineFinished,
    PipelineStatus,
    Reporter,
    SectionStarted,
)
from runner.core.jobspec import JobSpec
from runner.schedule import release
from runner.schedule.graph import JobGraph
from runner.schedule.retry import should_retry
from runner.schedule.unlogged import report_unlogged

# run_job(job, attempt, upstream, cancel) -> outcome; `upstream` names the jobs whose
# artifacts the job receives. It must return promptly once `cancel` is set.
JobRunner = Callable[[JobSpec, int, tuple[str, ...], threading.Event], JobOutcome]

# How often the loop looks at the cancel flag and delayed jobs when nothing else happens.
_POLL_SECONDS = 0.05

# What a job ends as if its thread stops before it decided (only a BaseException gets there).
_THREAD_DIED = JobOutcome(
    "failed",
    failure_reason="runner_system_failure",
    message="runner system failure: the job's thread ended unexpectedly",
)


@dataclass(frozen=True)
class PipelineResult:
    status: PipelineStatus
    duration: float
    outcomes: dict[str, JobOutcome]  # in pipeline order

    def as_finished(self) -> PipelineFinished:
        return PipelineFinished(self.status, self.duration, self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.status == "canceled":
            return 130
        return 1 if self.status == "failed" else 0


class Scheduler:
    """Runs `jobs` (in pipeline order) with `run_job`, emitting events to `reporter`.

    `played`: manual jobs the user asked for. `forced`: jobs named on the command line; when
    none of what they wait for is part of this run, they run whatever their `when` says.
    `pipeline`: all jobs of the pipeline when `jobs` is only a part of it. `cancel`: the
    event that cancels the run (made here if not given).
    """

    def __init__(
        self,
        jobs: Sequence[JobSpec],
        run_job: JobRunner,
        reporter: Reporter,
        *,
        concurrency: int,
        played: Iterable[str] = (),
        forced: Iterable[str] = (),
        pipeline: Sequence[JobSpec] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.graph = JobGraph(jobs, pipeline)
        self.run_job = run_job
        self.reporter = reporter
        self.concurrency = concurrency
        self.played = frozenset(played)
        self.forced = frozenset(forced)
        # set by a signal handler, or shared with the bridge job a child pipeline runs for
        self.cancel = cancel if cancel is not None else threading.Event()
        self._status: dict[str, JobStatus] = {job.name: "created" for job in jobs}
        self._outcomes: dict[str, JobOutcome] = {}
        self._pending: list[str] = []  # released, waiting for a slot, in pipeline order
        self._delayed: dict[str, float] = {}  # released `when: delayed` jobs -> due time
        self._running: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        # Not a SimpleQueue: CPython 3.11's SimpleQueue.get(timeout) can block for good when a
        # signal handler (Ctrl-C) runs past the timeout while it waits.
        self._finished: queue.Queue[tuple[str, JobOutcome]] = queue.Queue()
        self._canceled = False
        self._changed = True

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> PipelineResult:
        started = time.monotonic()
        try:
            while True:
                if self.cancel.is_set() and not self._canceled:
                    self._cancel_everything()
                if not self._canceled:
                    if self._changed:  # re-decide only after a job finished
                        self._changed = False
                        self._release_ready()
                    self._start_due_delayed()
                    self._start_pending()
                if not (self._running or self._pending or self._delayed):
                    break
                self._wait_for_change()
        finally:
            # Even on an unexpected error, never return while job threads still run.
            for cancel in self._running.values():
                cancel.set()
            for thread in self._threads:
                thread.join()
        self._finish_blocked()
        outcomes = {job.name: self._outcomes[job.name] for job in self.graph.jobs}
        status = pipeline_status(self.graph.jobs, outcomes, self._canceled)
        duration = time.monotonic() - started
        self.reporter.handle(PipelineFinished(status, duration, outcomes))
        return PipelineResult(status, duration, outcomes)

    def _release_ready(self) -> None:
        # Skipping a job can release or skip others, so go round until nothing changes.
        changed = True
        while changed:
            changed = False
            # jobs without needs share their prerequisites with their whole stage: fold once
            by_stage: dict[int, release.Composite] = {}
            for job in self.graph.jobs:
                if self._status[job.name] == "created" and job.name not in self._delayed:
                    changed |= self._consider(job, by_stage)

    def _consider(self, job: JobSpec, by_stage: dict[int, release.Composite]) -> bool:
        prereqs = self.graph.prerequisites[job.name]
        dag = job.needs is not None
        if job.name in self.forced and not prereqs:
            decision: release.Decision = "run" if job.when != "never" else "skip"
            state: release.Composite = "success"
        else:
            if dag:
                state = release.composite([self._prior(name) for name in prereqs], dag)
            elif job.stage_index in by_stage:
                state = by_stage[job.stage_index]
            else:
                state = release.composite([self._prior(name) for name in prereqs], dag)
                by_stage[job.stage_index] = state
            decision = release.decide(job, state, job.name in self.played, dag)
        if decision in ("wait", "blocked"):
            return False
        if decision == "skip":
            message = release.skip_message(job, state)
            self._finish(job, JobOutcome("skipped", message=message))
        elif decision == "manual":
            self._finish(job, JobOutcome("manual", message="manual job: run it with --manual"))
        elif job.when == "delayed" and job.start_in:
            self._delayed[job.name] = time.monotonic() + job.start_in
            header = f"Delayed: starts in {job.start_in:g}s (when: delayed)"
            self._emit(job, SectionStarted(job.name, "delayed", header))
        else:
            self._queue(job)
        return True

    def _prior(self, name: str) -> release.Prior:
        status = self._status[name]
        if status == "pending":  # released but not started: still incomplete
            status = "created"
        outcome = self._outcomes.get(name)
        if outcome is not None and status != "manual":
            return release.Prior(status, outcome.allowed_failure)
        job = self.graph.by_name[name]
        return release.Prior(status, status == "manual" and not release.manual_blocks(job))

    def _queue(self, job: JobSpec) -> None:
        self._status[job.name] = "pending"
        self._pending.append(job.name)
        self._emit(job, JobQueued(job.name, job.stage))

    def _start_due_delayed(self) -> None:
        now = time.monotonic()
        for name, due in list(self._delayed.items()):
            if due <= now:
                del self._delayed[name]
                self._queue(self.graph.by_name[name])

    def _start_pending(self) -> None:
        while self._pending and len(self._running) < self.concurrency:
            job = self.graph.by_name[self._pending.pop(0)]
            cancel = threading.Event()
            self._running[job.name] = cancel
            self._status[job.name] = "running"
            upstream = self._upstream(job)
            thread = threading.Thread(
                target=self._work, args=(job, upstream, cancel), name=f"job {job.name}"
            )
            self._threads.append(thread)
            thread.start()

    def _upstream(self, job: JobSpec) -> tuple[str, ...]:
        # Jobs of this run pass artifacts only if they ran; jobs outside it (a partial run)
        # pass whatever an earlier run left.
        return tuple(
            name
            for name in self.graph.artifact_sources(job)
            if name not in self._status or self._status[name] in ("success", "failed")
        )

    def _wait_for_change(self) -> None:
        timeout = _POLL_SECONDS
        if self._delayed:
            timeout = min(timeout, max(0.0, min(self._delayed.values()) - time.monotonic()))
        try:
            name, outcome = self._finished.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            del self._running[name]
            self._finish(self.graph.by_name[name], outcome)
            try:
                name, outcome = self._finished.get_nowait()
            except queue.Empty:
                return

    def _finish(self, job: JobSpec, outcome: JobOutcome) -> None:
        self._changed = True
        self._status[job.name] = outcome.status
        self._outcomes[job.name] = outcome
        self._emit(job, JobFinished(job.name, job.stage, outcome))

    def _emit(self, job: JobSpec, event: JobQueued | SectionStarted | JobFinished) -> None:
        """An event of the loop's own thread; a reporter failing on it fails no job (the
        outcome is decided, or the job has not started) and must not end the loop."""
        try:
            self.reporter.handle(event)
        except Exception as exc:
            report_unlogged(job.name, one_line(exc), traceback.format_exc())

    def _cancel_everything(self) -> None:
        self._canceled = True
        for cancel in self._running.values():
            cancel.set()
        for job in self.graph.jobs:
            if self._status[job.name] in ("created", "pending"):
                self._finish(job, JobOutcome("canceled", message="the pipeline was canceled"))
        self._pending.clear()
        self._delayed.clear()

    def _finish_blocked(self) -> None:
        for job in self.graph.jobs:
            if self._status[job.name] == "created":
                blocker = self._blocking_manual(job)
                message = f"waits for manual job {blocker}" if blocker else "never released"
                self._finish(job, JobOutcome("skipped", message=message))

    def _blocking_manual(self, job: JobSpec) -> str | None:
        for name in self.graph.prerequisites[job.name]:
            if self._status[name] == "manual" and release.manual_blocks(self.graph.by_name[name]):
                return name
            if self._status[name] == "created":
                found = self._blocking_manual(self.graph.by_name[name])
                if found:
                    return found
        return None

    # -- a worker thread --------------------------------------------------------------------

    def _work(self, job: JobSpec, upstream: tuple[str, ...], cancel: threading.Event) -> None:
        outcome = _THREAD_DIED
        try:
            outcome = self._attempts(job, upstream, cancel)
        finally:
            self._finished.put((job.name, outcome))  # whatever happened: the loop waits for it

    def _attempts(
        self, job: JobSpec, upstream: tuple[str, ...], cancel: threading.Event
    ) -> JobOutcome:
        attempt = 1
        while True:
            outcome = self._attempt(job, attempt, upstream, cancel)
            if cancel.is_set() or not should_retry(job.retry, outcome, attempt):
                break
            attempt += 1
        if cancel.is_set() and outcome.status == "failed":
            # Ctrl-C also reaches tools the build runs in pyci's process group (git, ...):
            # whatever broke after the cancel, the job was canceled
            outcome = replace(outcome, status="canceled", failure_reason="canceled")
        elif outcome.status == "failed":
            outcome = replace(outcome, allowed_failure=job.allow_failure.permits(outcome.exit_code))
        return replace(outcome, attempts=attempt)

    def _attempt(
        self, job: JobSpec, attempt: int, upstream: tuple[str, ...], cancel: threading.Event
    ) -> JobOutcome:
        started = time.monotonic()
        try:
            self.reporter.handle(JobStarted(job.name, job.stage, attempt))
            outcome = self.run_job(job, attempt, upstream, cancel)
        except Exception as exc:  # a bug below us, or the job's log failed: fail this job
            outcome = self._system_failure(job, exc)
        if not outcome.duration:
            outcome = replace(outcome, duration=time.monotonic() - started)
        return outcome

    def _system_failure(self, job: JobSpec, exc: Exception) -> JobOutcome:
        """The job's failure for `exc`; its traceback goes to the job's log, or where the log
        itself failed, to stderr and a file (unlogged.py)."""
        details = "".join(traceback.format_exception(exc))
        try:
            self.reporter.handle(LogChunk(job.name, details))
        except Exception:
            report_unlogged(job.name, one_line(exc), details)
        return JobOutcome(
            "failed",
            failure_reason="runner_system_failure",
            message=f"runner system failure: {one_line(exc)}",
        )


def one_line(exc: BaseException) -> str:
    """`exc` for a summary's note: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def pipeline_status(
    jobs: Sequence[JobSpec], outcomes: dict[str, JobOutcome], canceled: bool
) -> PipelineStatus:
    """GitLab's pipeline status from its jobs' outcomes (a blocking manual job is no failure)."""
    if canceled:
        return "canceled"
    statuses = [outcomes[job.name] for job in jobs]
    if any(o.status == "failed" and not o.allowed_failure for o in statuses):
        return "failed"
    if any(o.status == "canceled" and not o.allowed_failure for o in statuses):
        return "canceled"
    if all(o.status in ("skipped", "manual") for o in statuses):
        return "skipped"
    if any(o.status in ("failed", "canceled") for o in statuses):
        return "success_with_warnings"
    return "success"
