"""Benchmark: ways to give a job its own copy of the work tree (get_sources).

Compares, on a repository given on the command line (default: a generated one of 2,000 files
with 10 uncommitted changes), each `--repeat` times, medians in milliseconds:

- pyci:        runner.build.sources.get_sources (clone --shared, checkout, overlay changes);
- copy files:  `git ls-files` + shutil.copy2 of each file (no .git: git in the job breaks);
- copy + .git: the same plus a copy of .git (gitlab-ci-local's way: a real repository);
- trivial job: a whole `run_build` of `true` through the shell executor (all stages).

    python bench/bench_sources.py [REPO] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchlib import commit_all
from executors.factory import ExecutorOptions, create_executor
from runner.build.build import run_build
from runner.build.context import BuildContext
from runner.build.sources import get_sources
from runner.core.jobspec import JobSpec


class NullLog:
    def write(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass


class NullReporter:
    def handle(self, event) -> None:
        pass


def make_repo(root: Path, files: int = 2000) -> Path:
    repo = root / "generated"
    for i in range(files):
        path = repo / f"pkg{i % 40}" / f"module{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "x = 1\n" * 200)
    commit_all(repo, "init")
    for i in range(10):
        (repo / f"pkg{i}" / f"module{i}.py").write_text("changed\n")
    return repo


def copy_files(repo: Path, dest: Path, with_git: bool) -> None:
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    for rel in filter(None, listed.decode().split("\0")):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel, follow_symlinks=False)
    if with_git:
        shutil.copytree(repo / ".git", dest / ".git", symlinks=True)


def measure(repeat: int, action: Callable[[Path], None], scratch: Path) -> float:
    times = []
    for n in range(repeat):
        dest = scratch / f"dest{n}"
        started = time.perf_counter()
        action(dest)
        times.append((time.perf_counter() - started) * 1000)
        shutil.rmtree(dest, ignore_errors=True)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", nargs="?")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        repo = Path(args.repo).resolve() if args.repo else make_repo(scratch)
        files = len(
            subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True).stdout.split()
        )
        rows = {
            "pyci": lambda d: get_sources(repo, d, NullLog()),  # type: ignore[arg-type]
            "copy files": lambda d: copy_files(repo, d, False),
            "copy + .git": lambda d: copy_files(repo, d, True),
        }
        print(f"{repo} ({files} tracked files), median of {args.repeat}:")
        for name, action in rows.items():
            print(f"  {name:<12} {measure(args.repeat, action, scratch):8.1f} ms")
        job = JobSpec("bench", "test", 0, script=("true",))
        ctx = BuildContext(repo, scratch / "state", builds_root=scratch / "builds")

        def trivial(_dest: Path) -> None:
            executor = create_executor("shell", ExecutorOptions())
            run_build(job, executor, ctx, NullReporter(), threading.Event())

        print(f"  {'trivial job':<12} {measure(args.repeat, trivial, scratch):8.1f} ms")


if __name__ == "__main__":
    main()
