"""Does a run's cost follow what changed, not the size of the repository?

    python bench/bench_bigrepo.py [--runs N] [--files N] [--executor shell|container] [--tree TREE]

Two repositories with the same 3-job pipeline (three stages of `script: "true"`): one of
20,000 tracked files, one of 100. Each gets one `pyci run --plain` first (it clones the kept
checkout, docs/build.md); then N more runs of each, interleaved, are timed as whole processes:
the wall time, and the time from the summary's last line ("Pipeline passed ...") to the exit of
pyci (what clean-up holds the exit). Targets: the big repository's run within 1.3x of the
small one's, and the exit within 1 s of the summary.

`--tree TREE` runs pyci from another source tree (an older commit exported with `git archive`)
instead of this checkout, for a before/after. Build directories go to a temporary
PYCI_BUILDS_DIR, removed at the end. Prints medians and
the load average; exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import commit_all, pyci_from_tree

PIPELINE = """\
stages: [build, test, deploy]
build:
  stage: build
  script: ["true"]
test:
  stage: test
  script: ["true"]
deploy:
  stage: deploy
  script: ["true"]
"""


def make_repo(path: Path, files: int) -> Path:
    """A repository of `files` small tracked files, 100 per directory, plus the pipeline."""
    path.mkdir(parents=True)
    for index in range(files):
        directory = path / "src" / f"d{index // 100:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:05d}.txt").write_text(f"file {index}\n")
    (path / ".gitlab-ci.yml").write_text(PIPELINE)
    (path / ".gitignore").write_text(".pyci/\n")
    commit_all(path)
    return path


def timed_run(project: Path, pyci: list[str], executor: str, env: dict[str, str]):
    """Wall seconds of one `pyci run`, and seconds from its summary's last line to its exit."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [*pyci, "run", "--plain", "--executor", executor],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    summary_at = None
    for line in process.stdout:
        if line.startswith("Pipeline "):
            summary_at = time.perf_counter()
    errors = process.stderr.read() if process.stderr else ""
    code = process.wait()
    end = time.perf_counter()
    if code != 0 or summary_at is None:
        raise SystemExit(f"pyci run in {project} failed ({code}): {errors[-2000:]}")
    return end - start, end - summary_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (default 7)")
    parser.add_argument("--files", type=int, default=20_000, help="files of the big repository")
    parser.add_argument("--executor", default="shell", choices=["shell", "container"])
    parser.add_argument("--tree", metavar="TREE", help="run pyci from this source tree")
    args = parser.parse_args()
    pyci = [str(Path(sys.executable).with_name("pyci"))]
    extra_env = {}
    if args.tree:
        tree = str(Path(args.tree).resolve())
        pyci = pyci_from_tree(sys.executable, tree)
        extra_env = {"PYTHONPATH": tree}  # the helpers pyci spawns find their tree there

    with tempfile.TemporaryDirectory(prefix="pyci-bench-bigrepo-") as tmp:
        env = {**os.environ, "PYCI_BUILDS_DIR": str(Path(tmp) / "builds"), **extra_env}
        repos = {
            f"{args.files} files": make_repo(Path(tmp) / "big", args.files),
            "100 files": make_repo(Path(tmp) / "small", 100),
        }
        load_before = os.getloadavg()
        first = {name: timed_run(path, pyci, args.executor, env)[0] for name, path in repos.items()}
        walls: dict[str, list[float]] = {name: [] for name in repos}
        exits: dict[str, list[float]] = {name: [] for name in repos}
        for _ in range(args.runs):
            for name, path in repos.items():
                wall, after_summary = timed_run(path, pyci, args.executor, env)
                walls[name].append(wall)
                exits[name].append(after_summary)
        load_after = os.getloadavg()
        shutil.rmtree(Path(tmp) / "builds", ignore_errors=True)

    print(
        f"{args.runs} interleaved runs of each, --executor {args.executor}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs"
    )
    print(f"{'repository':14} {'first run':>10} {'next runs':>10} {'summary->exit':>14}")
    for name in repos:
        next_runs = statistics.median(walls[name]) * 1000
        exit_median, exit_max = statistics.median(exits[name]) * 1000, max(exits[name]) * 1000
        print(
            f"{name:14} {first[name] * 1000:8.0f}ms {next_runs:8.0f}ms "
            f"{exit_median:6.0f}ms (max {exit_max:.0f})"
        )
    big, small = (statistics.median(walls[name]) for name in repos)
    print(f"big / small, runs after the first: {big / small:.2f}x (target: within 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
