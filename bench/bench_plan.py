"""How fast a 500-job pipeline is loaded and planned, in-process.

    python bench/bench_plan.py [--runs N]

Load + plan of a generated 500-job pipeline (10 included files, YAML anchors, `extends`
chains, `parallel:matrix`, needs) in-process, against a plain `yaml.safe_load` of the same
files measured in the same run (so a slow or busy machine shows in both and the ratio stays
meaningful). Target: under 1 s. Start-up of `pyci list` as a process is measured by
bench/bench_startup.py.

Prints medians over N runs; exits 0 whatever the figures (it measures, it does not judge a
machine it cannot see).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import commit_all  # noqa: E402

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
    commit_all(path)


def median_seconds(action: Callable[[], object], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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

    from runner.pipeline import load_pipeline
    from runner.project import ProjectOptions

    with tempfile.TemporaryDirectory(prefix="pyci-bench-") as tmp:
        big = Path(tmp) / "big"
        make_project(big, big=True)
        opts = ProjectOptions(big, big / ".gitlab-ci.yml", {})
        pipeline = load_pipeline(opts)
        files = [big / ".gitlab-ci.yml", *sorted((big / "ci").glob("*.yml"))]

        def plain_yaml() -> None:
            for file in files:
                yaml.safe_load(file.read_text())

        load_plan = median_seconds(lambda: load_pipeline(opts), runs)
        yaml_only = median_seconds(plain_yaml, runs)
        steps = step_medians(opts, runs)

    rows = [
        (f"load + plan, {len(pipeline.jobs)} jobs", load_plan, "yaml.safe_load", yaml_only, 1.0),
    ]
    print(f"{'figure':36} {'median':>9} {'target':>8}  {'reference':16} {'median':>9} {'ratio':>7}")
    for name, value, ref_name, ref, target in rows:
        verdict = "ok" if value < target else "SLOW"
        print(
            f"{name:36} {value * 1000:7.1f}ms {target * 1000:6.0f}ms  {ref_name:16} "
            f"{ref * 1000:7.1f}ms {value / ref:6.1f}x  {verdict}"
        )
    print("of which, for the 500 jobs: " + ", ".join(f"{k} {v * 1000:.0f}ms" for k, v in steps))
    print(f"(medians of {runs} runs after one warm-up; Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
