"""Ctrl-C, timeouts and crashing jobs end cleanly: right statuses and exit codes, after_script
still runs, and no process or temporary directory is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.run.conftest import (
    Run,
    assert_nothing_left,
    child_env,
    processes_mentioning,
    pyci_command,
    wait_until,
)


def test_ctrl_c_cancels_running_jobs_runs_after_script_and_exits_130(project, job_tmp, tmp_path):
    repo = project("interrupt")
    out = tmp_path / "stdout"
    report = tmp_path / "report.json"
    with out.open("w") as stdout:
        # its own session, so that Ctrl-C reaches pyci and all it started, like a terminal does
        child = subprocess.Popen(
            pyci_command("--json-report", str(report)),
            cwd=repo,
            env=child_env(job_tmp),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert wait_until(lambda: "[long] started" in out.read_text(), timeout=20)
            assert wait_until(lambda: processes_mentioning("1234.5"))
            os.killpg(child.pid, signal.SIGINT)
            assert child.wait(timeout=20) == 130
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    jobs = {job["name"]: job for job in json.loads(report.read_text())["jobs"]}
    assert jobs["long"]["status"] == "canceled"
    assert jobs["next"]["status"] == "canceled"
    assert "[long] after_script status canceled" in out.read_text()
    assert_nothing_left("1234.5", job_tmp)


def run_child(project: Path, job_tmp: Path) -> Run:
    report = project.parent / "report.json"
    done = subprocess.run(
        pyci_command("--json-report", str(report)),
        cwd=project,
        env=child_env(job_tmp),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(done.returncode, done.stdout, done.stderr, project, json.loads(report.read_text()))


def test_timeout_kills_the_whole_job(project, job_tmp):
    run = run_child(project("timeout"), job_tmp)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.jobs["slow"]["status"] == "failed"
    assert run.jobs["slow"]["failure_reason"] == "job_execution_timeout"
    assert 2 <= run.jobs["slow"]["duration"] < 10
    assert run.jobs["fast"]["status"] == "success"
    assert "after timeout timedout" in run.log("slow")  # gitlab-runner's CI_JOB_STATUS
    assert_nothing_left("2345.5", job_tmp)


def test_a_crashing_job_leaves_nothing_behind(project, job_tmp):
    run = run_child(project("crash"), job_tmp)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.jobs["crash"]["status"] == "failed"
    assert run.jobs["crash"]["exit_code"] == 137
    assert run.jobs["after"]["status"] == "success"
    assert "about to crash" in run.log("crash")
    assert_nothing_left("3456.5", job_tmp)
