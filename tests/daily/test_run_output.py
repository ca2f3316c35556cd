"""What `pyci run` shows: a failed job's last lines and its log's path after the summary
(plain and live), the live view's pipeline header, and manual jobs as `manual`."""

from __future__ import annotations

import re

from tests.cli import run_pyci as pyci
from tests.daily.conftest import make_project

FAILING = """
ok:
  script: [echo fine]
tolerated:
  allow_failure: true
  script: [exit 1]
broken:
  script:
    - for i in $(seq 1 30); do echo "output line $i"; done
    - exit 3
"""

MANUAL = """
stages: [first, second]
quick:
  stage: first
  script: [echo quick]
deploy:
  stage: second
  when: manual
  script: [echo deploying]
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal_env(env: dict[str, str]) -> dict[str, str]:
    """As if stdout were a 100-column terminal: the live view draws."""
    return {**env, "TTY_COMPATIBLE": "1", "COLUMNS": "100", "LINES": "30"}


def after(text: str, marker: str) -> list[str]:
    return text[text.index(marker) :].splitlines()


def check_tail(lines: list[str]) -> None:
    heading = "--- broken failed; the last 20 lines of .pyci/logs/broken.log:"
    assert heading in lines, lines
    tail = lines[lines.index(heading) + 1 :]
    # 16 lines of output, `$ exit 3`, the clean-up section, the error, the job's end
    assert tail[:16] == [f"output line {n}" for n in range(15, 31)]
    assert tail[16:19] == [
        "$ exit 3",
        "Cleaning up project directory and file based variables",
        "ERROR: Job failed: exit code 3",
    ]
    assert tail[19].startswith("--- job failed in ") and tail[19].endswith(": exit code 3")
    shown = "\n".join(lines)
    assert "--- ok" not in shown  # a job that passed has no tail
    assert "--- tolerated" not in shown  # nor has one allowed to fail: a warning


def test_plain_run_ends_with_the_failed_jobs_last_lines_and_log_path(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": FAILING})
    run = pyci(repo, env, "run", "--plain", "--executor", "shell")
    assert run.returncode == 1, run.stderr
    lines = after(run.stdout, "Pipeline failed in")
    check_tail(lines)
    log = (repo / ".pyci" / "logs" / "broken.log").read_text().splitlines()
    heading = lines.index("--- broken failed; the last 20 lines of .pyci/logs/broken.log:")
    assert lines[heading + 1 : heading + 21] == log[-20:]


def test_live_view_summary_ends_with_the_failed_jobs_last_lines(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": FAILING})
    run = pyci(repo, terminal_env(env), "run", "--executor", "shell")
    assert run.returncode == 1, run.stderr
    check_tail(after(ANSI.sub("", run.stdout), "Pipeline failed in"))


def test_a_log_outside_the_current_directory_is_named_by_its_full_path(tmp_path, env):
    repo = make_project(tmp_path, {".gitlab-ci.yml": FAILING})
    run = pyci(tmp_path, env, "run", "--plain", "--executor", "shell", "-C", str(repo))
    assert "--- broken failed; the last 20 lines of group/demo/.pyci/logs/broken.log:" in (
        run.stdout.splitlines()
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = pyci(elsewhere, env, "run", "--plain", "--executor", "shell", "-C", str(repo))
    log = repo / ".pyci" / "logs" / "broken.log"
    assert f"--- broken failed; the last 20 lines of {log}:" in run.stdout.splitlines()


def test_live_view_has_a_pipeline_header_and_shows_manual_jobs_as_manual(tmp_path, env):
    repo = make_project(tmp_path, {"deploy.yml": MANUAL})
    run = pyci(repo, terminal_env(env), "run", "--executor", "shell", "-f", "deploy.yml")
    assert run.returncode == 0, run.stderr
    screen = ANSI.sub("", run.stdout.replace("\r", "\n"))
    headers = {line.strip() for line in screen.splitlines() if line.strip().startswith("Pipeline ")}
    sha = re.search(r"@ ([0-9a-f]{8}) ·", screen)
    assert sha is not None, screen
    assert f"Pipeline deploy.yml · main @ {sha.group(1)} · 2 jobs" in headers
    deploy_rows = [line for line in screen.splitlines() if " deploy " in f" {line} "]
    assert deploy_rows, screen
    # from the first frame on: never `created` (nor counted as waiting) while quick runs
    assert all("manual" in row for row in deploy_rows), deploy_rows
    counts = [line for line in screen.splitlines() if "passed" in line or "running" in line]
    assert not any("waiting" in line for line in counts), counts
    assert any("1 manual" in line for line in counts), counts
