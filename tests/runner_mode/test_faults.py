"""Runner mode's fault paths: each ends with the right state on the server (and the trace it
holds matching the runner's checksum), and nothing left on the machine (conftest's check).

Jobs that must still be running when the test acts print a marker and sleep; the test waits
for the marker to reach the server (an event of the double), never for a length of time."""

from __future__ import annotations

import json
import signal

from tests.runner_mode.conftest import Box, stop
from tests.runner_mode.test_end_to_end import assert_reported

MARKER = "job-is-running"


def wait_for_marker(box: Box, job) -> None:
    box.gitlab.wait_for(lambda: MARKER.encode() in job.trace)


def test_cancel_mid_job_runs_after_script(box: Box) -> None:
    job = box.queue("long", [f"echo {MARKER}", "sleep 300"], after_script=["echo after_script ran"])
    runner = box.start("--max-builds", "1")
    wait_for_marker(box, job)
    box.gitlab.cancel(job.id)
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    assert job.state == "canceled"
    trace = assert_reported(job, "failed", "job_canceled")
    assert "after_script ran" in trace


def test_job_timeout(box: Box) -> None:
    job = box.queue("slow", [f"echo {MARKER}", "sleep 300"], timeout=3)
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "failed", "job_execution_timeout")
    assert "execution took longer than 3s" in trace


def test_416_resends_from_the_servers_offset(box: Box) -> None:
    ticking = "while true; do echo tick; sleep 0.5; done"  # output, so more patches come
    job = box.queue("resume", [f"echo {MARKER}", ticking])
    runner = box.start("--max-builds", "1")
    wait_for_marker(box, job)
    box.gitlab.inject("trace", "lose")  # the server forgets half of what it holds
    suffix = f"/jobs/{job.id}/trace"
    box.gitlab.wait_for(lambda: box.gitlab.answered("PATCH", suffix, 416))
    box.gitlab.cancel(job.id)  # the job's end, once the resume happened
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    trace = assert_reported(job, "failed", "job_canceled")  # whole: checksum and size match
    assert trace.count(MARKER) == 2  # the echoed command and its output, once each


def test_5xx_and_dropped_connections_during_the_trace(box: Box) -> None:
    box.gitlab.inject("trace", 500, "drop", 502)
    box.gitlab.inject("update", 202, 503, "drop")
    job = box.queue("flaky", ["echo one", "echo two"])
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "success")
    assert "one\n" in trace and "two\n" in trace
    assert box.gitlab.faults == {"trace": [], "update": []}  # every fault was met
    puts = box.gitlab.requests_to("PUT", f"/jobs/{job.id}")
    finals = [r for r in puts if json.loads(r.body)["state"] != "running"]
    assert len(finals) == 4  # 202, 503, dropped, then accepted: the same body each time
    assert all(json.loads(r.body) == job.final for r in finals)


def test_sigterm_cancels_running_jobs_and_exits_0(box: Box) -> None:
    job = box.queue("busy", [f"echo {MARKER}", "sleep 300"], after_script=["echo cleaned"])
    runner = box.start()
    wait_for_marker(box, job)
    out, err = stop(runner, signal.SIGTERM)
    assert runner.returncode == 0, err
    trace = assert_reported(job, "failed", "runner_system_failure")
    assert "cleaned" in trace
    assert f"job {job.id} (busy): failed (runner_system_failure)" in out


def test_sigquit_lets_running_jobs_finish(box: Box) -> None:
    job = box.queue("finishing", [f"echo {MARKER}", "sleep 2", "echo done"])
    waiting = box.queue("never-taken", ["true"])
    runner = box.start("--concurrent", "1")
    wait_for_marker(box, job)
    _, err = stop(runner, signal.SIGQUIT)
    assert runner.returncode == 0, err
    trace = assert_reported(job, "success")
    assert "done" in trace
    assert waiting.state == "pending"


def test_a_repository_that_fails_to_clone(box: Box) -> None:
    job = box.gitlab.queue_job(
        box.payload("no-repo", ["true"]),
        repo_url=lambda token: box.git_server.repo_url("group/missing", token),
    )
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "failed", "runner_system_failure")
    assert "fetching http://127.0.0.1:" in trace
    assert job.token not in trace and "secret-token" not in trace


def test_a_malformed_payload_fails_that_job_not_the_runner(box: Box) -> None:
    broken = box.payload("broken", ["true"])
    broken["steps"] = "echo not a list"
    bad = box.gitlab.queue_job(broken, repo_url=lambda t: box.git_server.repo_url("group/demo", t))
    good = box.queue("good", ["echo fine"])
    run = box.run("--max-builds", "2")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(bad, "failed", "runner_system_failure")
    assert "steps: not a list" in trace
    assert "fine" in assert_reported(good, "success")


def test_request_errors_back_off_and_a_bad_token_stops(box: Box) -> None:
    box.gitlab.inject("request", 409, 500, "drop", 422)
    job = box.queue("after-faults", ["echo ok"])
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    assert_reported(job, "success")
    assert box.gitlab.faults["request"] == []
    box.gitlab.runner_token = "glrt-another-token"
    refused = box.run("--max-builds", "1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: runner test-box: the server refused the runner token (403 Forbidden)"
    )


def test_idle_runner_exits_after_wait_timeout(box: Box) -> None:
    run = box.run("--wait-timeout", "0.5")
    assert run.returncode == 0, run.stderr
    requests = box.gitlab.requests_to("POST", "/jobs/request")
    assert requests
    # the 204's X-GitLab-Last-Update is sent back
    later = [json.loads(r.body) for r in requests[1:]]
    assert all(body.get("last_update") == box.gitlab.last_update for body in later)


def test_a_restart_after_kill_9_sweeps_what_the_killed_runner_left(box: Box) -> None:
    job = box.queue("killed", [f"echo {MARKER}", "sleep 300"])
    runner = box.start()
    wait_for_marker(box, job)
    state = box.tmp / "builds" / "state"
    assert [p.name for p in state.iterdir() if p.name.startswith(f"job-{job.id}-")]
    runner.kill()
    runner.communicate(timeout=60)
    again = box.run("--wait-timeout", "0.5")
    assert again.returncode == 0, again.stderr
    assert list(state.iterdir()) == []
    # conftest's check: no container, mount, cgroup, netns or link of the killed run is left


def test_a_trace_the_server_could_not_take_at_the_end_is_sent_before_the_final_update(
    box: Box,
) -> None:
    # more faults than the sender's last round tries: the rest goes with the final update's
    # retries, so the server ends with the whole trace
    box.gitlab.inject("trace", *[503] * 7)
    box.gitlab.inject("update", 202)
    job = box.queue("stubborn", ["echo persisted"])
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    assert "persisted" in assert_reported(job, "success")
    assert box.gitlab.faults["trace"] == []
