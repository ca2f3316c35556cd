"""Benchmark: runner mode's idle cost and its overhead per job, against `pyci run`.

1. Idle: `pyci runner run-single` asks the runner API double (tests/fake_gitlab_runner.py)
   for jobs every `check_interval` (3 s, the default) and gets 204s. After a warm-up (the first
   request answered), the CPU time of the runner and its children (the container fork server)
   over `--idle-seconds` (default 60), as a share of one core. Target: under 1%.
2. Job overhead: the same busybox job (`echo hello`, image from a loopback registry, network
   none), `--count` times each, interleaved:
   - runner mode: `run-single --max-builds 1`, one job queued on the double, its repository
     served by git-http-backend; wall time of the whole process, and the job's time on the
     server (from the 201 answer to the accepted final PUT);
   - `pyci run --plain` of a one-job .gitlab-ci.yml in a git repository, wall time.
   Medians; the difference is what runner mode adds (the request, fetching the repository,
   sending the trace, the final update).

    python bench/bench_runner.py [--idle-seconds 60] [--count 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cli import isolated_env  # noqa: E402
from tests.fake_gitlab_runner import RUNNER_TOKEN, FakeGitLabRunner  # noqa: E402
from tests.gitutil import git  # noqa: E402
from tests.images.imagelib import busybox_image  # noqa: E402
from tests.images.servers import image_on_a_registry  # noqa: E402
from tests.runner_mode.conftest import APPLETS  # noqa: E402
from tests.runner_mode.git_server import GitServer  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and of its living descendants."""
    total = 0.0
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        todo.extend(children.get(current, []))
    return total


def project(tmp: Path, image: str) -> tuple[Path, Path, str]:
    """(a work tree with .gitlab-ci.yml, the bare repositories' root, the commit)."""
    work = tmp / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / ".gitlab-ci.yml").write_text(f"hello:\n  image: {image}\n  script:\n    - echo hello\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "bench")
    served = tmp / "git"
    (served / "group").mkdir(parents=True)
    git(tmp, "clone", "-q", "--bare", str(work), str(served / "group" / "demo.git"))
    return work, served, git(work, "rev-parse", "HEAD")


def payload(sha: str, image: str) -> dict:
    return {
        "allow_git_fetch": True,
        "job_info": {"name": "hello", "stage": "test", "project_id": 1, "project_name": "demo"},
        "git_info": {"repo_url": "", "ref": "main", "sha": sha, "ref_type": "branch"},
        "runner_info": {"timeout": 600},
        "steps": [{"name": "script", "script": ["echo hello"], "when": "on_success"}],
        "image": {"name": image},
    }


def runner_command(url: str, image: str, tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner.cli",
        "runner",
        "run-single",
        *("--url", url, "--token", RUNNER_TOKEN, "--default-image", image),
        *("--builds-dir", str(tmp / "runner-builds"), "--cache-dir", str(tmp / "cache")),
        *("--network", "none", *extra),
    ]


def idle(env: dict[str, str], tmp: Path, image: str, seconds: float) -> None:
    with FakeGitLabRunner() as gitlab:
        process = subprocess.Popen(
            runner_command(gitlab.url, image, tmp),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            gitlab.wait_for(lambda: gitlab.answered("POST", "/jobs/request", 204), 60)
            start_cpu, start = cpu_seconds(process.pid), time.monotonic()
            time.sleep(seconds)  # the measured window itself, not an ordering of events
            used, wall = cpu_seconds(process.pid) - start_cpu, time.monotonic() - start
            requests = len(gitlab.requests_to("POST", "/jobs/request"))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    print(f"idle: {used:.3f} s CPU over {wall:.1f} s = {100 * used / wall:.2f}% of one core")
    print(f"      ({requests} job requests, check_interval 3 s)")


def overhead(env: dict[str, str], tmp: Path, image: str, count: int) -> None:
    work, served, sha = project(tmp, image)
    runner_walls, server_times, run_walls = [], [], []
    with FakeGitLabRunner() as gitlab, GitServer(served, gitlab.job_token_is_valid) as server:
        for _ in range(count):
            job = gitlab.queue_job(
                payload(sha, image), repo_url=lambda t: server.repo_url("group/demo", t)
            )
            start = time.monotonic()
            subprocess.run(
                runner_command(gitlab.url, image, tmp, "--max-builds", "1"),
                env=env,
                check=True,
                capture_output=True,
            )
            runner_walls.append(time.monotonic() - start)
            assert job.final is not None and job.final["state"] == "success", job.trace
            server_times.append(job.finished_at - job.started_at)
            start = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "runner.cli", "run", "--plain", "--network", "none"],
                cwd=work,
                env=env,
                check=True,
                capture_output=True,
            )
            run_walls.append(time.monotonic() - start)
    print(f"job overhead, busybox `echo hello`, median of {count}:")
    print(f"  pyci runner run-single (1 job): {statistics.median(runner_walls):.3f} s wall")
    print(f"    the job on the server (201 -> final PUT): {statistics.median(server_times):.3f} s")
    print(f"  pyci run (1 job):               {statistics.median(run_walls):.3f} s wall")
    added = statistics.median(runner_walls) - statistics.median(run_walls)
    print(f"  runner mode adds {added:+.3f} s per process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pyci-bench-runner-"))
    try:
        with image_on_a_registry(busybox_image(APPLETS), "library/busybox") as image:
            env = isolated_env(tmp, ROOT)
            overhead(env, tmp, image, args.count)
            idle(env, tmp, image, args.idle_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
