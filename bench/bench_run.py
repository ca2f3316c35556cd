"""Benchmark: pyci's own overhead per job, on a pipeline of 50 trivial shell jobs.

Measured in one run, on the same machine, each `--repeat` times (the table shows medians):

- bash:           the 50 job scripts run one after another with `bash -c` (the reference);
- scheduler:      the same scripts through pyci's scheduler and reporters in-process, each job
                  a `bash -c` child: the cost of the ready-set loop, threads and events;
- builds:         the planned 50 jobs (predefined variables and all) built for real through
                  the scheduler in-process: shell executor, sources, log files, plain output;
                  the per-job figure without the noise of an interpreter's start-up (but
                  with the run's one checkout of the sources, 1-2 ms per job of 50);
- pyci run (1):   `pyci run --plain` on a one-job pipeline: interpreter start, load, plan;
- pyci run (50):  `pyci run --plain --concurrency 1` on the 50-job pipeline, shell executor;
- no sources (50): the same with `GIT_STRATEGY: none`, i.e. without each job's fresh copy of
                  the repository (a `git clone --shared` + checkout per job), which shows how
                  much of a job's cost is getting sources and how much the rest of pyci.

Overhead per job = (pyci run (50) - pyci run (1)) / 49 - bash per job: what pyci adds to each
job on top of the shell itself, with the fixed start-up cost taken out. Target: under 10 ms.
The same from the in-process row: (builds - bash) / 50. On a busy machine the start-up of
`pyci run (1)` varies by ±100 ms between samples, ±2 ms per job in the first figure.
(For scale: gitlab-ci-local's shell mode takes about 0.7 s for a 3-job pipeline.)

    python bench/bench_run.py [--jobs 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.core.events import JobOutcome, LogChunk  # noqa: E402
from runner.core.jobspec import JobSpec  # noqa: E402
from runner.report import FanOut  # noqa: E402
from runner.report.logfiles import LogFiles  # noqa: E402
from runner.report.plain import PlainReporter  # noqa: E402
from runner.schedule.scheduler import Scheduler  # noqa: E402


def job_script(index: int) -> str:
    return f'echo "job {index} says hello"'


def write_pipeline(directory: Path, jobs: int, sources: bool = True) -> None:
    lines = ["stages: [build, test, deploy]", ""]
    if not sources:
        lines += ["variables:", "  GIT_STRATEGY: none", ""]
    for index in range(jobs):
        stage = ("build", "test", "deploy")[index * 3 // jobs]
        lines += [f"job-{index:02d}:", f"  stage: {stage}", f"  script: '{job_script(index)}'", ""]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".gitlab-ci.yml").write_text("\n".join(lines))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=directory, check=True)
    subprocess.run([*git, "add", "-A"], cwd=directory, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], cwd=directory, check=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bash_reference(jobs: int) -> None:
    for index in range(jobs):
        subprocess.run(["bash", "-c", job_script(index)], check=True, stdout=subprocess.DEVNULL)


def scheduler_only(jobs: int, logs: Path) -> None:
    specs = [JobSpec(f"job-{i:02d}", "test", 0, (job_script(i),), needs=None) for i in range(jobs)]

    reporter = FanOut([LogFiles(logs), PlainReporter(io.StringIO())])

    def run_job(job: JobSpec, attempt: int, upstream: tuple[str, ...], cancel: threading.Event):
        done = subprocess.run(["bash", "-c", job.script[0]], capture_output=True, text=True)
        reporter.handle(LogChunk(job.name, done.stdout))
        return JobOutcome("success" if done.returncode == 0 else "failed", done.returncode)

    result = Scheduler(specs, run_job, reporter, concurrency=1).run()
    assert result.status == "success", result


def builds_in_process(project: Path, builds_root: Path) -> None:
    from executors.factory import ExecutorOptions, create_executor
    from runner.build import snapshot
    from runner.build.build import run_build
    from runner.build.context import BuildContext
    from runner.pipeline import load_pipeline
    from runner.project import ProjectOptions

    jobs = load_pipeline(ProjectOptions(project, project / ".gitlab-ci.yml", {})).jobs
    state = project / ".pyci"
    reporter = FanOut([LogFiles(state / "logs"), PlainReporter(io.StringIO())])

    def run_job(job: JobSpec, attempt: int, upstream: tuple[str, ...], cancel: threading.Event):
        context = BuildContext(project, state, upstream, attempt=attempt, builds_root=builds_root)
        executor = create_executor("shell", ExecutorOptions())
        return run_build(job, executor, context, reporter, cancel)

    def run() -> None:
        result = Scheduler(jobs, run_job, reporter, concurrency=1).run()
        assert result.status == "success", result

    samples.setdefault("builds", []).append(timed(run))
    snapshot.release_all()  # the end of the run: its checkout goes


samples: dict[str, list[float]] = {}


def pyci_run(project: Path) -> None:
    command = [sys.executable, "-m", "runner", "run", "--plain", "--concurrency", "1"]
    command += ["--executor", "shell"]  # the default is the container executor where it runs
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pyci run failed in {project}:\n{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-cli", action="store_true", help="only bash and the scheduler")
    args = parser.parse_args()
    n = args.jobs
    with tempfile.TemporaryDirectory(prefix="pyci-bench-") as scratch:
        work = Path(scratch)
        write_pipeline(work / "one", 1)
        write_pipeline(work / "many", n)
        write_pipeline(work / "bare", n, sources=False)
        for _ in range(args.repeat):
            samples.setdefault("bash", []).append(timed(lambda: bash_reference(n)))
            samples.setdefault("scheduler", []).append(
                timed(lambda: scheduler_only(n, work / "logs"))
            )
            builds_in_process(work / "many", work / "builds")
            if not args.skip_cli:
                samples.setdefault("pyci run (1)", []).append(timed(lambda: pyci_run(work / "one")))
                samples.setdefault(f"pyci run ({n})", []).append(
                    timed(lambda: pyci_run(work / "many"))
                )
                samples.setdefault(f"no sources ({n})", []).append(
                    timed(lambda: pyci_run(work / "bare"))
                )
    print_table(samples, n)


def print_table(samples: dict[str, list[float]], n: int) -> None:
    median = {name: statistics.median(values) for name, values in samples.items()}
    bash = median["bash"]
    print(f"{n} trivial jobs, {len(samples['bash'])} repeats, medians, concurrency 1")
    print(f"{'':<16}{'total':>10}{'per job':>12}{'vs bash':>10}")
    for name, total in median.items():
        jobs = 1 if name == "pyci run (1)" else n
        print(
            f"{name:<16}{total * 1000:>8.0f}ms{total / jobs * 1000:>10.2f}ms{total / bash:>9.2f}x"
        )
    bash_per_job = bash / n
    sched = (median["scheduler"] - bash) / n
    print(f"\nscheduler + reporters overhead per job: {sched * 1000:.2f} ms")
    builds = (median["builds"] - bash) / n
    verdict = "within" if builds < 0.010 else "OVER"
    print(f"in-process builds overhead per job: {builds * 1000:.2f} ms ({verdict} 10 ms)")
    if f"pyci run ({n})" in median:
        per_job = (median[f"pyci run ({n})"] - median["pyci run (1)"]) / (n - 1)
        overhead = per_job - bash_per_job
        print(
            f"pyci run per job: {per_job * 1000:.2f} ms, of which bash {bash_per_job * 1000:.2f} ms"
        )
        verdict = "within" if overhead < 0.010 else "OVER"
        print(f"pyci overhead per job: {overhead * 1000:.2f} ms ({verdict} the 10 ms target)")
        bare = (median[f"no sources ({n})"] - median["pyci run (1)"]) / (n - 1) - bash_per_job
        print(f"pyci overhead per job without getting sources: {bare * 1000:.2f} ms")
        print(f"fixed start-up (1-job pipeline): {median['pyci run (1)'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
