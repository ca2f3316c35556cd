"""The ready-set loop, driven by real `sh -c` jobs."""

from __future__ import annotations

import os
import signal
import threading
import time

from runner.core.events import JobFinished, JobOutcome, JobQueued, JobStarted, PipelineFinished
from runner.core.jobspec import RetrySpec
from runner.schedule.scheduler import Scheduler
from tests.schedule.helpers import job


def run(jobs, runner, recorder, concurrency=4, **kwargs):
    scheduler = Scheduler(jobs, runner, recorder, concurrency=concurrency, **kwargs)
    return scheduler.run()


def statuses(result):
    return {name: outcome.status for name, outcome in result.outcomes.items()}


# Jobs are ordered by files, never by sleeping: a job waits for a file another job makes. A
# wait gives up after 30 s (exit 9) so that a scheduler that never starts the other job fails
# the test instead of hanging it.
WATCHDOG = 'i=$((i+1)); [ "$i" -lt 3000 ] || exit 9; sleep 0.01'


def wait_for_file(path) -> str:
    """sh: wait until `path` exists."""
    return f'i=0; until [ -e "{path}" ]; do {WATCHDOG}; done'


def rendezvous(directory, count: int) -> str:
    """sh: mark this job as running in `directory`, then wait until `count` jobs have."""
    return (
        f'touch "{directory}/$CI_JOB_NAME"; i=0; '
        f'until [ "$(ls "{directory}" | wc -l)" -ge {count} ]; do {WATCHDOG}; done'
    )


def test_stages_run_in_order(sh_runner, recorder):
    jobs = [job("compile", "build", "sleep 0.1"), job("unit", "test"), job("ship", "deploy")]
    result = run(jobs, sh_runner, recorder)
    assert result.status == "success" and result.exit_code == 0
    assert [e.job for e in recorder.of(JobStarted)] == ["compile", "unit", "ship"]
    assert recorder.time_of(JobStarted, "unit") >= recorder.time_of(JobFinished, "compile")
    assert isinstance(recorder.events[-1][1], PipelineFinished)


def test_needs_start_before_the_stage_is_done(sh_runner, recorder, tmp_path):
    gate = tmp_path / "after-fast-ran"
    jobs = [
        job("slow", "build", wait_for_file(gate)),  # ends only once after-fast has run
        job("fast", "build"),
        job("after-fast", "test", f'touch "{gate}"', needs=["fast"]),
        job("after-all", "test"),
    ]
    result = run(jobs, sh_runner, recorder)
    assert result.status == "success", statuses(result)
    assert recorder.time_of(JobStarted, "after-fast") < recorder.time_of(JobFinished, "slow")
    assert recorder.time_of(JobStarted, "after-all") >= recorder.time_of(JobFinished, "slow")


def test_empty_needs_starts_at_once(sh_runner, recorder, tmp_path):
    gate = tmp_path / "lint-ran"
    jobs = [
        job("slow", "build", wait_for_file(gate)),  # ends only once lint (a later stage) ran
        job("lint", "deploy", f'touch "{gate}"', needs=[]),
    ]
    result = run(jobs, sh_runner, recorder)
    assert result.status == "success", statuses(result)
    assert recorder.time_of(JobStarted, "lint") < recorder.time_of(JobFinished, "slow")


def test_concurrency_limits_parallel_jobs(sh_runner, recorder, tmp_path):
    # the first two wait for each other: without the limit the other two would start too
    jobs = [job(f"j{i}", "build", rendezvous(tmp_path, 2)) for i in range(4)]
    result = run(jobs, sh_runner, recorder, concurrency=2)
    assert result.status == "success", statuses(result)
    assert max_parallel(recorder) == 2


def test_concurrency_runs_jobs_in_parallel(sh_runner, recorder, tmp_path):
    # each job ends only once all three are running: they must run at the same time
    jobs = [job(f"j{i}", "build", rendezvous(tmp_path, 3)) for i in range(3)]
    result = run(jobs, sh_runner, recorder, concurrency=3)
    assert result.status == "success", statuses(result)
    assert max_parallel(recorder) == 3


def max_parallel(recorder) -> int:
    running = peak = 0
    for _, event in recorder.events:
        if isinstance(event, JobStarted):
            running += 1
            peak = max(peak, running)
        elif isinstance(event, JobFinished) and event.outcome.status not in ("skipped", "manual"):
            running -= 1
    return peak


def test_failure_skips_later_stages_and_releases_on_failure_jobs(sh_runner, recorder):
    jobs = [
        job("compile", "build", "exit 3"),
        job("unit", "test"),
        job("report", "test", when="on_failure"),
        job("cleanup", "deploy", when="always"),
        job("ship", "deploy"),
    ]
    result = run(jobs, sh_runner, recorder)
    assert statuses(result) == {
        "compile": "failed",
        "unit": "skipped",
        "report": "success",
        "cleanup": "success",
        "ship": "skipped",
    }
    assert result.outcomes["compile"].exit_code == 3
    assert result.outcomes["unit"].message == "an earlier job failed"
    assert result.status == "failed" and result.exit_code == 1


def test_on_failure_is_skipped_when_all_passed(sh_runner, recorder):
    result = run([job("a", "build"), job("b", "test", when="on_failure")], sh_runner, recorder)
    assert statuses(result) == {"a": "success", "b": "skipped"}
    assert result.status == "success"


def test_allowed_failure_passes_with_warnings(sh_runner, recorder):
    jobs = [job("lint", "build", "exit 1", allow_failure=True), job("unit", "test")]
    result = run(jobs, sh_runner, recorder)
    assert statuses(result) == {"lint": "failed", "unit": "success"}
    assert result.outcomes["lint"].allowed_failure
    assert result.status == "success_with_warnings" and result.exit_code == 0


def test_allow_failure_exit_codes(sh_runner, recorder):
    jobs = [
        job("permitted", "build", "exit 42", allow_failure=(42, 43)),
        job("not-permitted", "build", "exit 1", allow_failure=(42,)),
    ]
    result = run(jobs, sh_runner, recorder)
    assert result.outcomes["permitted"].allowed_failure
    assert not result.outcomes["not-permitted"].allowed_failure
    assert result.status == "failed"


def test_manual_jobs_wait_unless_played(sh_runner, recorder):
    jobs = [
        job("deploy-staging", "build", when="manual", allow_failure=True),
        job("deploy-prod", "build", when="manual"),
        job("smoke", "test"),
    ]
    result = run(jobs, sh_runner, recorder, played=["deploy-staging"])
    assert statuses(result) == {
        "deploy-staging": "success",
        "deploy-prod": "manual",
        "smoke": "skipped",
    }
    assert result.outcomes["smoke"].message == "waits for manual job deploy-prod"
    assert result.exit_code == 0


def test_non_blocking_manual_job_does_not_hold_later_stages(sh_runner, recorder):
    jobs = [
        job("optional", "build", when="manual", allow_failure=True),
        job("unit", "test"),
        job("needs-optional", "test", needs=["optional"]),
    ]
    result = run(jobs, sh_runner, recorder)
    assert statuses(result) == {
        "optional": "manual",
        "unit": "success",
        "needs-optional": "skipped",
    }
    assert result.outcomes["needs-optional"].message == "a job it needs did not run"


def test_delayed_job_waits_start_in(sh_runner, recorder):
    jobs = [job("a", "build"), job("later", "test", when="delayed", start_in=0.3)]
    run(jobs, sh_runner, recorder)
    gap = recorder.time_of(JobStarted, "later") - recorder.time_of(JobFinished, "a")
    assert gap >= 0.3


def test_retry_until_success(sh_runner, recorder, tmp_path):
    counter = tmp_path / "count"
    script = f'echo x >> {counter}; [ "$(wc -l < {counter})" -ge 3 ]'
    result = run([job("flaky", "build", script, retry=RetrySpec(max=2))], sh_runner, recorder)
    assert result.outcomes["flaky"].status == "success"
    assert result.outcomes["flaky"].attempts == 3
    assert [e.attempt for e in recorder.of(JobStarted)] == [1, 2, 3]


def test_retry_stops_at_max_and_honours_exit_codes(sh_runner, recorder):
    jobs = [
        job("twice", "build", "exit 2", retry=RetrySpec(max=1)),
        job("no-match", "build", "exit 2", retry=RetrySpec(max=2, when=(), exit_codes=(5,))),
    ]
    result = run(jobs, sh_runner, recorder)
    assert result.outcomes["twice"].attempts == 2
    assert result.outcomes["no-match"].attempts == 1


def test_upstream_follows_dependencies_needs_and_stages(sh_runner, recorder):
    jobs = [
        job("a", "build"),
        job("b", "build"),
        job("c", "build", "exit 1", allow_failure=True),
        job("stage-based", "test"),
        job("dag", "test", needs=["a", "b"], no_artifacts_from=("b",)),
        job("limited", "test", dependencies=["b"]),
        job("skipped-dep", "deploy", when="manual", allow_failure=True),
        job("last", "deploy", needs=["skipped-dep", "a"], when="always"),
    ]
    run(jobs, sh_runner, recorder)
    upstream = {name: up for name, _, up in sh_runner.calls}
    assert upstream["stage-based"] == ("a", "b", "c")
    assert upstream["dag"] == ("a",)
    assert upstream["limited"] == ("b",)
    assert upstream["last"] == ("a",)  # the manual job never ran: nothing to receive


def test_partial_run_receives_from_jobs_outside_it(sh_runner, recorder):
    pipeline = [job("a", "build"), job("b", "test")]
    run(pipeline[1:], sh_runner, recorder, pipeline=pipeline, forced=["b"])
    assert sh_runner.calls == [("b", 1, ("a",))]


def test_named_job_runs_whatever_its_when(sh_runner, recorder):
    result = run([job("report", "test", when="on_failure")], sh_runner, recorder, forced=["report"])
    assert result.outcomes["report"].status == "success"


def cancel_once_running(scheduler: Scheduler, marker, action=None) -> threading.Thread:
    """A thread that waits until a job made `marker`, then cancels (or runs `action`)."""

    def wait_then_act() -> None:
        for _ in range(3000):  # a watchdog: the job never started
            if marker.exists():
                break
            time.sleep(0.01)
        (action or scheduler.cancel.set)()

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def test_cancel_stops_running_jobs_and_cancels_the_rest(sh_runner, recorder, tmp_path):
    marker = tmp_path / "long-runs"
    jobs = [job("long", "build", f'touch "{marker}"; sleep 30'), job("next", "test")]
    scheduler = Scheduler(jobs, sh_runner, recorder, concurrency=2)
    cancel_once_running(scheduler, marker)
    result = scheduler.run()
    # "canceled" (not success after 30 s, not a timeout): the sleep was killed
    assert statuses(result) == {"long": "canceled", "next": "canceled"}
    assert result.status == "canceled" and result.exit_code == 130


def test_a_crashing_runner_fails_only_its_job(recorder):
    def runner(job_spec, attempt, upstream, cancel):
        if job_spec.name == "broken":
            raise RuntimeError("boom")
        return JobOutcome("success", exit_code=0)

    jobs = [job("broken", "build"), job("fine", "build"), job("after", "test", when="always")]
    result = run(jobs, runner, recorder)
    assert statuses(result) == {"broken": "failed", "fine": "success", "after": "success"}
    assert result.outcomes["broken"].failure_reason == "runner_system_failure"
    assert "RuntimeError: boom" in (result.outcomes["broken"].message or "")


def test_every_job_is_queued_started_and_finished_once(sh_runner, recorder):
    jobs = [job(f"j{i}", ("build", "test", "deploy")[i % 3]) for i in range(12)]
    result = run(jobs, sh_runner, recorder, concurrency=3)
    assert result.status == "success"
    for kind in (JobQueued, JobStarted, JobFinished):
        assert sorted(e.job for e in recorder.of(kind)) == sorted(j.name for j in jobs)


def test_a_job_that_fails_after_cancel_counts_as_canceled(recorder):
    scheduler_box = []

    def runner(job_spec, attempt, upstream, cancel):
        scheduler_box[0].cancel.set()
        cancel.wait(5)
        return JobOutcome("failed", failure_reason="runner_system_failure", message="git died")

    scheduler = Scheduler([job("a", "build")], runner, recorder, concurrency=1)
    scheduler_box.append(scheduler)
    result = scheduler.run()
    assert result.outcomes["a"].status == "canceled"
    assert result.status == "canceled"


def test_a_slow_signal_handler_cannot_stall_the_loop(sh_runner, recorder, tmp_path):
    # A Ctrl-C handler that runs longer than the loop's poll once hung CPython's SimpleQueue.
    marker = tmp_path / "long-runs"
    jobs = [job("long", "build", f'touch "{marker}"; sleep 30')]
    scheduler = Scheduler(jobs, sh_runner, recorder, concurrency=1)

    def slow_handler(signum, frame):
        time.sleep(0.2)  # the slowness under test, not an ordering
        scheduler.cancel.set()

    previous = signal.signal(signal.SIGUSR1, slow_handler)
    try:
        # the signal arrives while the loop waits for the running job
        cancel_once_running(scheduler, marker, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        result = scheduler.run()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result.status == "canceled"  # by the handler, while the job ran


def test_a_large_pipeline_keeps_stage_order(recorder):
    finished: set[str] = set()
    lock = threading.Lock()
    violations: list[str] = []
    stages = ("build", "test", "deploy")
    jobs = [job(f"j{i:03d}", stages[i * 3 // 600]) for i in range(600)]
    jobs += [job("dag", "deploy", needs=["j000"])]

    def runner(job_spec, attempt, upstream, cancel):
        if job_spec.needs is not None:
            waits_for = [need.job for need in job_spec.needs]
        else:
            waits_for = [j.name for j in jobs if j.stage_index < job_spec.stage_index]
        with lock:
            early = [name for name in waits_for if name not in finished]
            if early:
                violations.append(f"{job_spec.name} started before {early[0]}")
            finished.add(job_spec.name)
        return JobOutcome("success", exit_code=0)

    result = run(jobs, runner, recorder, concurrency=8)
    assert result.status == "success"
    assert violations == []
    assert len(recorder.of(JobFinished)) == 601


def test_artifacts_are_needs_with_artifacts_narrowed_by_dependencies():
    # GitLab's Ci::BuildDependencies#local: the needs that keep `artifacts: true` (or every
    # earlier stage's job, without needs), then `where(name: dependencies)` when given.
    from runner.schedule.graph import JobGraph

    jobs = [
        job("a", "build"),
        job("b", "build"),
        job("c", "build"),
        job(
            "both", "test", needs=["a", "b", "c"], no_artifacts_from=("b",), dependencies=["a", "b"]
        ),
        job("none", "test", needs=["a"], dependencies=[]),
        job("staged", "test", dependencies=["c", "a"]),
    ]
    graph = JobGraph(jobs)
    sources = {j.name: graph.artifact_sources(j) for j in jobs if j.stage == "test"}
    assert sources == {"both": ("a",), "none": (), "staged": ("a", "c")}
