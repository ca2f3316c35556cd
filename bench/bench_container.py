"""Benchmark: start + run + tear down `true` in a container, side by side, in one run.

Each row is the wall time of one complete container life (median of `--count`, after a warm-up),
busybox (the `busybox-static` package) as the image, already on disk:

- unshare (floor):   `unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot ROOTFS
                     true`, timed inside one shell loop (no Python in the measurement);
- crun:              `crun run` of an OCI bundle over the same rootfs, also in a shell loop
                     (crun refuses a hybrid cgroup layout whose v2 side has a controller);
- docker:            `docker run --rm busybox true`, only where a daemon and the image exist;
- pyci launch:       pyci's runtime through its fork server: a fresh overlay upper layer (in a
                     tmpfs of the container's own), all namespaces, pivot_root, /proc, /dev,
                     /sys, masked paths, capabilities and Docker's seccomp policy, network none;
- pyci disk upper:   the same with the upper layer in scratch dirs made and removed on disk, as
                     the executor does once per job;
- pyci + cgroup:     the same plus the container's own cgroup (memory, cpu, pids; created,
                     joined, removed), as the executor does for every stage;
- pyci bridge:       the same plus a veth on the `pyci0` bridge with an address;
- pyci once:         `pyci launch` through a fresh launcher process per container (the
                     alternative to the fork server: a Python start-up each time);
- executor stage:    `ContainerExecutor.run` of a one-line script (script file, stage shell).

Then a 3-stage pipeline of trivial busybox jobs through the executor (prepare, step_script,
cleanup per job, one after another): the container part of `pyci run`, wall time.

Then the same 3-stage pipeline end to end: `pyci run --plain` as a user starts it, on a git
project whose jobs use the busybox directory as `image:` (default bridge network), wall time of
the whole process (median wall, and CPU of the process and its children), also with `--network
none` and with `--executor shell`; beside each the pipeline as pyci reports it (scheduler,
builds, containers), then `pyci list` (interpreter, imports, load and plan of the same file)
and a bare `python -c pass`.
Target: pyci launch within 2x of the floor; the pipeline under 0.5 s.

    python bench/bench_container.py [--count 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
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

from executors.base import BuildDirs, StageCommand  # noqa: E402
from executors.container import cgroups, network  # noqa: E402
from executors.container.cgroupfs import Limits  # noqa: E402
from executors.container.executor import ContainerExecutor, ContainerSettings  # noqa: E402
from executors.container.runtime import Launcher, Scratch, remove_tree, run_container  # noqa: E402
from executors.container.spec import ContainerSpec, NetworkSpec, Rootfs  # noqa: E402
from runner.core.jobspec import ImageSpec, JobSpec  # noqa: E402


def build_busybox(root: Path) -> None:
    for name in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "dev", "sys"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s"], check=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def shell_loop(command: str, count: int) -> float | None:
    """Seconds per iteration of `command` run `count` times in one bash loop."""
    script = f"for i in $(seq {count}); do {command} >/dev/null 2>&1 || exit 1; done"
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", script])
    return None if done.returncode else (time.perf_counter() - started) / count


def median_of(action: Callable[[], None], count: int) -> float:
    action()  # warm-up
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def crun_bundle(work: Path, rootfs: Path) -> Path | None:
    if not shutil.which("crun"):
        return None
    bundle = work / "crun-bundle"
    bundle.mkdir()
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    config["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    info = subprocess.run(["docker", "image", "inspect", "busybox"], capture_output=True)
    return info.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    count = args.count
    work = Path(tempfile.mkdtemp(prefix="pyci-bench-"))
    rows: list[tuple[str, float | None, str]] = []
    launcher = Launcher("serve")
    try:
        rootfs = work / "busybox"
        build_busybox(rootfs)
        floor = shell_loop(
            f"unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot {rootfs} true",
            count,
        )
        rows.append(("unshare (floor)", floor, "shell loop"))
        bundle = crun_bundle(work, rootfs)
        if bundle is not None:
            # crun refuses the hybrid cgroup layout of some machines: run it without cgroups
            crun = shell_loop(
                f"crun --cgroup-manager=disabled run --bundle {bundle} pyci-bench-crun-$i", count
            )
            rows.append(("crun", crun, "shell loop"))
        if docker_available():
            rows.append(("docker", shell_loop("docker run --rm busybox true", count), ""))
        else:
            rows.append(("docker", None, "no daemon or no busybox image here"))

        state = work / "state"
        counter = iter(range(1_000_000))

        volatile = state / "volatile"
        volatile.mkdir(parents=True)

        def one(
            launch: Launcher, cgroup: bool = False, bridge: bool = False, disk: bool = False
        ) -> None:
            container_id = f"pyci-bench-{next(counter)}"
            scratch = Scratch.create(state, container_id) if disk else None
            if scratch is not None:
                layers = Rootfs((str(rootfs),), scratch.upper, scratch.work, scratch.merged)
            else:  # the upper layer in a tmpfs of the container's own: no disk, nothing left
                base = str(volatile)
                layers = Rootfs(
                    (str(rootfs),), f"{base}/u", f"{base}/w", f"{base}/m", tmpfs_base=base
                )
            spec = ContainerSpec(id=container_id, command=("true",), rootfs=layers, seccomp=True)
            group = lease = None
            if cgroup:
                limits = Limits(memory_bytes=256 << 20, cpus=1.0, pids_max=256)
                group = driver.create(container_id, limits)
                spec = dataclasses.replace(spec, cgroup_dirs=group.dirs, cgroup_v2_dir=group.v2_dir)
            if bridge:
                lease = pool.lease()
                spec = dataclasses.replace(
                    spec,
                    network=NetworkSpec(
                        "bridge",
                        lease,
                        pool.bridge.gateway,
                        pool.bridge.name,
                        network.host_link_name(container_id),
                    ),
                )
            try:
                result, _ = run_container(launch, spec, timeout=30)
                assert result.exit_code == 0, result
            finally:
                if group is not None:
                    group.remove()
                if lease is not None:  # the veth goes with the container's namespace
                    pool.release(lease)
                if scratch is not None:
                    scratch.remove()

        driver = cgroups.open_driver()
        pool = network.AddressPool(network.ensure_bridge())
        pyci = median_of(lambda: one(launcher), count)
        rows.append(("pyci launch", pyci, "fork server, network none, upper layer on tmpfs"))
        on_disk = median_of(lambda: one(launcher, disk=True), count)
        rows.append(("pyci disk upper", on_disk, "upper/work dirs made and removed on disk"))
        rows.append(("pyci + cgroup", median_of(lambda: one(launcher, cgroup=True), count), ""))
        rows.append(("pyci bridge", median_of(lambda: one(launcher, bridge=True), count), ""))
        once = Launcher("once")
        rows.append(("pyci once", median_of(lambda: one(once), max(5, count // 5)), ""))

        executor_stage, pipeline = executor_figures(work, rootfs, launcher, count)
        rows.append(("executor stage", executor_stage, "cgroup + seccomp, network none"))
        rows.append(("3-stage pipeline", pipeline, "executor part, bridge network"))
        rows.extend(cli_figures(work, rootfs, max(5, count // 5)))
    finally:
        launcher.close()
        network.finish()
        remove_tree(work)

    print(f"{'what':<18} {'ms':>8}  notes")
    for name, seconds, note in rows:
        shown = f"{seconds * 1000:8.2f}" if seconds is not None else "       -"
        print(f"{name:<18} {shown}  {note}")
    if floor and pyci:
        print(f"pyci launch / floor: {pyci / floor:.2f}x (target <= 2x)")
    return 0


def executor_figures(work: Path, rootfs: Path, launcher: Launcher, count: int):
    class NullLog:
        def write(self, text: str) -> None:
            pass

    def dirs_for(name: str) -> BuildDirs:
        project, scratch = work / name / "project", work / name / "project.tmp"
        project.mkdir(parents=True, exist_ok=True)
        scratch.mkdir(parents=True, exist_ok=True)
        return BuildDirs(project, scratch)

    settings = ContainerSettings(state_dir=work / "state", network="none")
    executor = ContainerExecutor(settings, launcher)
    job = JobSpec(name="bench", stage="test", stage_index=0, script=("true",),
                  image=ImageSpec(str(rootfs)))  # fmt: skip
    executor.prepare(job, dirs_for("stage"), NullLog())
    cancel = threading.Event()
    try:
        stage = median_of(
            lambda: executor.run(StageCommand("step_script", "true\n", 30), NullLog(), cancel),
            count,
        )
    finally:
        executor.cleanup()

    def pipeline() -> None:
        for index, stage_name in enumerate(("build", "test", "deploy")):
            job = JobSpec(name=stage_name, stage=stage_name, stage_index=index,
                          script=("true",), image=ImageSpec(str(rootfs)))  # fmt: skip
            bridged = ContainerExecutor(dataclasses.replace(settings, network="bridge"), launcher)
            bridged.prepare(job, dirs_for(stage_name), NullLog())
            try:
                text = "echo $CI_JOB_STAGE\n"
                result = bridged.run(StageCommand("step_script", text, 30), NullLog(), cancel)
                assert result.exit_code == 0
            finally:
                bridged.cleanup()

    return stage, median_of(pipeline, max(3, count // 10))


CLI_PIPELINE = """
stages: [build, test, deploy]
default:
  image: {rootfs}
build:
  stage: build
  script: [echo built]
test:
  stage: test
  script: [echo tested]
deploy:
  stage: deploy
  script: [echo deployed]
"""


def cli_figures(work: Path, rootfs: Path, count: int) -> list[tuple[str, float | None, str]]:
    """`pyci run` of a 3-stage busybox pipeline end to end, and what its time is made of."""
    project = work / "cli-project"
    project.mkdir()
    (project / ".gitlab-ci.yml").write_text(CLI_PIPELINE.format(rootfs=rootfs))
    git_env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
               "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=project, check=True, env={**os.environ, **git_env})
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYCI_BUILDS_DIR": str(work / "cli-builds"),
        "PYCI_RUN_DIR": str(work / "cli-run"),
    }
    # users do not set it; with it every pyci module is compiled again on each run (~80 ms)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    reported: dict[str, list[float]] = {}

    def run(*command: str, record: str = "") -> None:
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        found = re.search(r"Pipeline passed in ([0-9.]+)s", done.stdout)
        if record and found:
            reported.setdefault(record, []).append(float(found.group(1)))

    def timed(action: Callable[[], None]) -> tuple[float, float]:
        """Median wall and median CPU (user + sys of the process and its children)."""
        action()  # warm-up
        walls, cpus = [], []
        for _ in range(count):
            before = os.times()
            started = time.perf_counter()
            action()
            walls.append(time.perf_counter() - started)
            after = os.times()
            cpus.append(
                after.children_user
                - before.children_user
                + after.children_system
                - before.children_system
            )
        return statistics.median(walls), statistics.median(cpus)

    pyci = (sys.executable, "-m", "runner.cli")
    rows: list[tuple[str, float | None, str]] = []
    variants = [
        ("pyci run 3-stage", "bridge", ("--executor", "container"),
         "end to end, container executor, bridge (target < 500 ms)"),
        ("  --network none", "none", ("--executor", "container", "--network", "none"),
         "end to end, container executor, no network"),
        ("  --executor shell", "shell", ("--executor", "shell"), "end to end, shell executor"),
    ]  # fmt: skip
    for name, key, flags, note in variants:
        wall, cpu = timed(lambda flags=flags, key=key: run(*pyci, "run", "--plain", *flags,
                                                            record=key))  # fmt: skip
        pipeline = statistics.median(reported[key]) * 1000
        rows.append((name, wall, f"{note}; CPU {cpu * 1000:.0f} ms, pipeline {pipeline:.0f} ms"))
    listing, listing_cpu = timed(lambda: run(*pyci, "list"))
    rows.append(
        ("  pyci list", listing, f"start-up, imports, load + plan; CPU {listing_cpu * 1000:.0f} ms")
    )
    bare, _ = timed(lambda: run(sys.executable, "-c", "pass"))
    rows.append(("  python -c pass", bare, "the interpreter alone"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
