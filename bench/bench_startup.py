"""Start-up of `pyci list` (and, with --run, of a small `pyci run`), measured honestly.

    python bench/bench_startup.py [--runs N] [--run] [--baseline TREE [--tree TREE]]

One loop runs every variant once per round, in an order rotated from round to round, so a
neighbour's burst of work falls on all variants alike (interleaved A/B). Each run is a new
process; its wall time and its CPU time (user + sys, its waited-for children included: the
`git` processes, the fork server) come from `os.wait4`. Medians are printed with the
interquartile range, which is the noise the medians should be read against.

The reference, measured in the same loop: `python -c "import pydantic, yaml, git"`, the three
libraries `pyci list` cannot do without. The goal is `pyci list` within 1.5x of it. Since
`import pydantic` is lazy, the loop also measures the floor of any program that validates with
pydantic (those imports, then one one-field model validated), and prints pyci list against it
(docs/startup.md).

`--baseline TREE` adds the same commands run from another source tree (say, an older commit
exported with `git archive <commit> | tar -x -C TREE`), so two designs are compared in one
loop; the median of the per-round differences (this tree minus the baseline) is printed with
its interquartile range: a difference inside that range is noise. Both trees are then run
through the same small wrapper (below), so neither pays for anything the other does not.
`--tree TREE` puts another tree in this one's place (two older commits compared, say).

`--run` adds `pyci run --plain` of a 3-stage `script: "true"` pipeline with the shell
executor and with the container executor on the bridge network (root only).

Prints the table and the machine's load average before and after; exits 0 whatever the
figures (it measures, it does not judge a machine it cannot see).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import commit_all, pyci_from_tree  # noqa: E402

PIPELINE = """\
stages: [build, test, deploy]
variables: {GREETING: hello}
build:
  stage: build
  script: ["true"]
test:
  stage: test
  script: ["true"]
  rules:
    - if: $GREETING == "hello"
deploy:
  stage: deploy
  script: ["true"]
  needs: [test]
"""

IMPORTS = "import pydantic, yaml, git"
# The least any program validating with pydantic pays: `import pydantic` alone is lazy (its
# `__getattr__` loads the model machinery on first use), so the reference above has not yet
# paid for BaseModel, field collection, a core schema and the plugin loader. This one has.
FLOOR = (
    "from pydantic import BaseModel; import yaml, git\n"
    "class One(BaseModel):\n    x: int = 0\n"
    "One.model_validate({'x': 1})"
)


# Measured as a user runs pyci: with Python's bytecode cache. Without it (a shell that exports
# PYTHONDONTWRITEBYTECODE, as CI images often do) every module of pyci is compiled again on
# each run, ~80 ms of CPU that no installed pyci pays.
MEASURED_ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Variant:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def make_project(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / ".gitlab-ci.yml").write_text(PIPELINE)
    (path / ".gitignore").write_text(".pyci/\n")
    commit_all(path)


def measure_once(variant: Variant, cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `variant` (its output thrown away)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        variant.argv,
        cwd=cwd,
        env={**MEASURED_ENVIRONMENT, **variant.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{variant.name}: exit {process.returncode}: {errors.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 4:
        middle = statistics.median(values)
        return min(values), middle, max(values)
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def variants(args: argparse.Namespace, project: Path) -> list[Variant]:
    python = sys.executable
    pyci = str(Path(python).with_name("pyci"))
    found = [
        Variant("imports", [python, "-c", IMPORTS]),
        Variant("one pydantic model", [python, "-c", FLOOR]),
        Variant("list", [pyci, "list"]),
    ]
    run_commands = []
    if args.run:
        run_commands = [
            ("run shell", ["run", "--plain", "--executor", "shell"]),
        ]
        if os.geteuid() == 0:
            run_commands.append(("run bridge", ["run", "--plain", "--executor", "container"]))
        found += [Variant(name, [pyci, *command]) for name, command in run_commands]
    if args.baseline:
        this = Path(args.tree).resolve() if args.tree else ROOT
        trees = {"this": str(this), "base": str(Path(args.baseline).resolve())}
        for label, tree in trees.items():
            commands = [("list", ["list"]), *run_commands]
            for name, command in commands:
                argv = [*pyci_from_tree(python, tree), *command]
                # the helpers pyci spawns (fork server, ...) find their tree through PYTHONPATH
                found.append(Variant(f"{name} [{label}]", argv, {"PYTHONPATH": tree}))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--baseline", metavar="TREE", help="another source tree to compare")
    parser.add_argument("--tree", metavar="TREE", help="with --baseline: compare TREE, not this")
    parser.add_argument("--run", action="store_true", help="also time small `pyci run`s")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pyci-bench-startup-") as tmp:
        project = Path(tmp) / "project"
        make_project(project)
        todo = variants(args, project)
        load_before = os.getloadavg()
        for variant in todo:  # warm-up: bytecode caches, the page cache, the image store
            measure_once(variant, project)
        for round_index in range(args.runs):
            shift = round_index % len(todo)
            for variant in todo[shift:] + todo[:shift]:
                wall, cpu = measure_once(variant, project)
                variant.walls.append(wall)
                variant.cpus.append(cpu)
        load_after = os.getloadavg()

    print(
        f"{args.runs} interleaved rounds; load average before {load_before[0]:.2f} "
        f"{load_before[1]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f}; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'variant':<22} {'wall median (IQR)':>24} {'CPU median (IQR)':>24}")
    for variant in todo:
        w1, w2, w3 = (x * 1000 for x in quartiles(variant.walls))
        c1, c2, c3 = (x * 1000 for x in quartiles(variant.cpus))
        wall = f"{w2:8.0f} ms ({w1:4.0f}-{w3:4.0f})"
        cpu = f"{c2:8.0f} ms ({c1:4.0f}-{c3:4.0f})"
        print(f"{variant.name:<22} {wall} {cpu}")
    by_name = {variant.name: variant for variant in todo}
    reference, listing = by_name["imports"], by_name["list"]
    wall_ratio = statistics.median(listing.walls) / statistics.median(reference.walls)
    cpu_ratio = statistics.median(listing.cpus) / statistics.median(reference.cpus)
    print(
        f"pyci list / python -c {IMPORTS!r}: wall {wall_ratio:.2f}x, CPU {cpu_ratio:.2f}x "
        "(goal: within 1.5x)"
    )
    floor = by_name["one pydantic model"]
    floor_cpu = statistics.median(floor.cpus)
    print(
        f"one pydantic model / python -c {IMPORTS!r}: CPU "
        f"{floor_cpu / statistics.median(reference.cpus):.2f}x; "
        f"pyci list / one pydantic model: CPU {statistics.median(listing.cpus) / floor_cpu:.2f}x"
    )
    if args.baseline:
        print("this tree minus the baseline, median of per-round differences (IQR):")
        for variant in todo:
            if not variant.name.endswith("[this]"):
                continue
            base = by_name[variant.name.replace("[this]", "[base]")]
            walls = [a - b for a, b in zip(variant.walls, base.walls, strict=True)]
            cpus = [a - b for a, b in zip(variant.cpus, base.cpus, strict=True)]
            w1, w2, w3 = (x * 1000 for x in quartiles(walls))
            c1, c2, c3 = (x * 1000 for x in quartiles(cpus))
            name = variant.name.removesuffix(" [this]")
            print(
                f"  {name:<20} wall {w2:+6.0f} ms ({w1:+.0f}..{w3:+.0f})   "
                f"CPU {c2:+6.0f} ms ({c1:+.0f}..{c3:+.0f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
