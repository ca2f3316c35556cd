"""How fast a pipeline is loaded and planned, and how fast `pyci list` answers.

    python bench/bench_plan.py [--runs N]

Two figures, each with a reference measured in the same run on the same machine (so a slow or
busy machine shows in both and the ratio stays meaningful):

1. load + plan of a generated 500-job pipeline (10 included files, YAML anchors, `extends`
   chains, `parallel:matrix`, needs) in-process, against a plain `yaml.safe_load` of the same
   files. Target: under 1 s.
2. `pyci list` on a small file as a whole new process, against `python -c pass`.
   Target: under 150 ms. On a machine shared with other work, wall time says more about the
   neighbours than about pyci, so the CPU time (user + sys of the process and its children,
   e.g. the `git` that gitpython starts) is printed too, with what the libraries pyci cannot
   do without cost on their own, each as a process minus `python -c pass`. Since git and the
   YAML are read by a forked child on the other core (runner/prefetch.py), the CPU of pyci's
   own process alone is printed as well: with a free core, that is what the wall time follows.

Prints a table of medians over N runs; exits 0 whatever the figures (it measures, it does not
judge a machine it cannot see).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INCLUDED_FILES = 10
JOBS_PER_FILE = 46  # plus one 2x2 matrix job per file: 10 * (46 + 4) = 500 jobs


def included_file(index: int) -> str:
    lines = [
        f".common-{index}: &common-{index}",
        "  image: alpine:3.19",
        "  before_script: [echo setup]",
        "  retry: 1",
        f".template-{index}:",
        f"  <<: *common-{index}",
        "  variables: {LEVEL: base}",
        "  rules:",
        "    - if: $CI_COMMIT_BRANCH",
        "      when: on_success",
    ]
    for job in range(JOBS_PER_FILE):
        stage = ("build", "test", "deploy")[job % 3]
        lines += [
            f"job-{index}-{job}:",
            f"  extends: .template-{index}",
            f"  stage: {stage}",
            f"  script: [echo {index} {job}, make target-{job}]",
            f"  variables: {{JOB: '{job}'}}",
            "  artifacts: {paths: [out/], when: on_success}",
        ]
        if stage == "deploy":
            previous = f"job-{index}-{job - 1}"
            lines.append(f"  needs: [{previous}, {{job: matrix-{index}, artifacts: false}}]")
    lines += [
        f"matrix-{index}:",
        f"  extends: .template-{index}",
        "  stage: build",
        "  script: [echo $OS $ARCH]",
        "  parallel:",
        "    matrix:",
        "      - OS: [linux, windows]",
        "        ARCH: [amd64, arm64]",
    ]
    return "\n".join(lines) + "\n"


def make_project(path: Path, big: bool) -> None:
    path.mkdir(parents=True)
    if big:
        includes = [f"  - local: ci/part-{i}.yml" for i in range(INCLUDED_FILES)]
        (path / "ci").mkdir()
        for i in range(INCLUDED_FILES):
            (path / "ci" / f"part-{i}.yml").write_text(included_file(i))
        root = "include:\n" + "\n".join(includes) + "\nvariables: {GLOBAL: 'yes'}\n"
    else:
        root = (
            "stages: [build, test]\n"
            "build: {stage: build, script: [make]}\n"
            "test: {stage: test, script: [make test], needs: [build]}\n"
        )
    (path / ".gitlab-ci.yml").write_text(root)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)


def median_seconds(action: Callable[[], object], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def process_medians(argv: list[str], cwd: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds (user + sys, children included) of a new process."""
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)  # warm-up: page cache, .pyc
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


# What a `pyci list` process cannot avoid importing, each measured alone.
LIBRARY_IMPORTS = {
    "pydantic + 1 model": "import pydantic\nclass A(pydantic.BaseModel):\n    x: int\nA(x=1)",
    "gitpython": "import git",
    "pyyaml": "import yaml",
}


# `pyci list` that reports, at exit, the CPU of its own process (without its children).
OWN_CPU_LIST = """
import atexit, os, resource, sys
me = os.getpid()
def report():
    if os.getpid() == me:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        os.write(2, f"\\nown-cpu={usage.ru_utime + usage.ru_stime}\\n".encode())
atexit.register(report)
from runner.cli import main
sys.exit(main(["list"]))
"""


def own_cpu_median(cwd: Path, runs: int) -> float:
    """Median CPU seconds of the `pyci list` process itself, children excluded."""
    argv = [sys.executable, "-c", OWN_CPU_LIST]
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)  # warm-up
    found = []
    for _ in range(runs):
        done = subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True)
        found.append(float(done.stderr.rsplit("own-cpu=", 1)[1]))
    return statistics.median(found)


def step_medians(opts: object, runs: int) -> list[tuple[str, float]]:
    """Where load + plan spends its time, step by step (same steps as runner.pipeline)."""
    from runner.config.validate import validate_pipeline
    from runner.pipeline import _git_facts, load_expanded
    from runner.plan.planner import Planner

    timings: dict[str, list[float]] = {"git": [], "load+expand": [], "validate": [], "plan": []}
    for _ in range(runs):
        start = time.perf_counter()
        facts = _git_facts(opts)
        mark = time.perf_counter()
        timings["git"].append(mark - start)
        expanded = load_expanded(opts, facts)
        start, mark = mark, time.perf_counter()
        timings["load+expand"].append(mark - start)
        config = validate_pipeline(expanded.globals, expanded.jobs)
        start, mark = mark, time.perf_counter()
        timings["validate"].append(mark - start)
        planner = Planner(config, expanded.jobs, opts, facts, expanded.globals)
        planner.check_expressions()
        planner.check_references()
        planner.plan(planner.decide_workflow())
        timings["plan"].append(time.perf_counter() - mark)
    return [(name, statistics.median(values)) for name, values in timings.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (default 7)")
    runs = parser.parse_args().runs

    import yaml

    from runner.commands.common import ProjectOptions
    from runner.pipeline import load_pipeline

    with tempfile.TemporaryDirectory(prefix="pyci-bench-") as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        make_project(big, big=True)
        make_project(small, big=False)
        opts = ProjectOptions(big, big / ".gitlab-ci.yml", {})
        pipeline = load_pipeline(opts)
        files = [big / ".gitlab-ci.yml", *sorted((big / "ci").glob("*.yml"))]

        def plain_yaml() -> None:
            for file in files:
                yaml.safe_load(file.read_text())

        load_plan = median_seconds(lambda: load_pipeline(opts), runs)
        yaml_only = median_seconds(plain_yaml, runs)
        steps = step_medians(opts, runs)

        cli = [sys.executable, "-m", "runner.cli", "list"]
        env_path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env_path}" if env_path else str(ROOT)
        pyci_list, pyci_list_cpu = process_medians(cli, small, runs)
        pyci_list_own_cpu = own_cpu_median(small, runs)
        python_pass, python_pass_cpu = process_medians([sys.executable, "-c", "pass"], small, runs)
        libraries = {
            name: process_medians([sys.executable, "-c", code], small, runs)[1] - python_pass_cpu
            for name, code in LIBRARY_IMPORTS.items()
        }

    rows = [
        (f"load + plan, {len(pipeline.jobs)} jobs", load_plan, "yaml.safe_load", yaml_only, 1.0),
        ("pyci list, small file (process)", pyci_list, "python -c pass", python_pass, 0.150),
    ]
    print(f"{'figure':36} {'median':>9} {'target':>8}  {'reference':16} {'median':>9} {'ratio':>7}")
    for name, value, ref_name, ref, target in rows:
        verdict = "ok" if value < target else "SLOW"
        print(
            f"{name:36} {value * 1000:7.1f}ms {target * 1000:6.0f}ms  {ref_name:16} "
            f"{ref * 1000:7.1f}ms {value / ref:6.1f}x  {verdict}"
        )
    print("of which, for the 500 jobs: " + ", ".join(f"{k} {v * 1000:.0f}ms" for k, v in steps))
    print(
        f"pyci list CPU (user+sys): {pyci_list_cpu * 1000:.0f}ms, of which pyci's own process "
        f"{pyci_list_own_cpu * 1000:.0f}ms (the rest: the prefetch child, git), against "
        f"{python_pass_cpu * 1000:.0f}ms for python -c pass; imports alone, beyond that: "
        + ", ".join(f"{name} {cpu * 1000:.0f}ms" for name, cpu in libraries.items())
    )
    print(f"(medians of {runs} runs after one warm-up; Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
