"""A job against the cgroups and /sys of its host, through the container executor.

The threat: with `--network host`, /sys was the host's, bound recursively with only its top
remounted read-only, so every cgroup hierarchy under it stayed writable: a job raised its own
`pids.max`, moved itself into the root memory cgroup, and could write `release_agent`,
`devices.allow` and `freezer.state`. Each write below must be refused, in every network mode
and on both kinds of root (the busybox image and the host's own root), and no host file may
change.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import BuildDirs, StageCommand
from executors.container import cgroups, sysfs
from executors.container.executor import ContainerExecutor, ContainerSettings
from runner.core.jobspec import ImageSpec, JobSpec

MODES = ("none", "host", "bridge")
KINDS = ("busybox", "host-root")
REFUSALS = ("Read-only file system", "Permission denied", "Operation not permitted")
PIDS_LIMIT = 77
MEMORY_LIMIT = 256 * 1024 * 1024
LAYOUT = cgroups.detect_layout(cgroups.discover())
CG = "/sys/fs/cgroup"

# (what, file to write in the container, value) for this machine's layout; in the container
# each hierarchy's root is the container's own cgroup (its cgroup namespace)
if LAYOUT == "v2":
    WRITES = [
        ("own pids.max", f"{CG}/pids.max", "max"),
        ("own memory.max", f"{CG}/memory.max", "max"),
        ("root cgroup.procs", f"{CG}/cgroup.procs", "$$"),
        ("freezer", f"{CG}/cgroup.freeze", "1"),
        ("subtree control", f"{CG}/cgroup.subtree_control", "+pids"),
    ]
    HOST_FILES = [f"{CG}/cgroup.subtree_control"]
else:
    WRITES = [
        ("own pids.max", f"{CG}/pids/pids.max", "max"),
        ("own memory limit", f"{CG}/memory/memory.limit_in_bytes", "-1"),
        ("root cgroup.procs", f"{CG}/memory/cgroup.procs", "$$"),
        ("release_agent", f"{CG}/memory/release_agent", "/tmp/escape-agent"),
        ("devices.allow", f"{CG}/devices/devices.allow", "a"),
        ("freezer", f"{CG}/freezer/freezer.state", "FROZEN"),
    ]
    HOST_FILES = [
        f"{CG}/memory/release_agent",
        f"{CG}/pids/release_agent",
        f"{CG}/devices/devices.list",
    ]
# (not the root's cgroup.procs: every process on the machine that starts or ends changes it,
# and a job that got in would be gone from it by the time it is read again; the job's own
# EROFS for that write is what the test asserts)

# /sys files the host's network namespace exposes; written with their own current value, so
# that a failure of this test changes nothing on the machine
SYS_WRITES = [
    path
    for path in ("/sys/class/net/lo/mtu", "/sys/kernel/mm/ksm/run", "/sys/kernel/uevent_helper")
    if Path(path).exists()
]

ATTEMPT = """
attempt() {{
    if err=$( {{ echo "$2" > "$1"; }} 2>&1 ); then echo "WROTE $1"; else echo "REFUSED $1: $err"; fi
}}
{attempts}
mkdir {cg}/{escape_dir} 2>&1 && echo "WROTE {cg}/{escape_dir}" || echo "REFUSED {cg}/{escape_dir}"
echo "pids.max now: $(cat {pids_max})"
grep ' /sys' /proc/self/mountinfo | awk '{{print "MOUNT " $5 " " $6}}'
"""


# a directory a job must not be able to make (a cgroup, or a directory on the host's cgroup
# tmpfs); "pyci" in its name lets the leftover check see it too
ESCAPE_DIR = "pyci-escape-dir"


class Log:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)


@pytest.fixture
def dirs() -> Iterator[BuildDirs]:
    root = Path(tempfile.mkdtemp(prefix="escape-cgroups-"))
    (root / "project").mkdir()
    (root / "project.tmp").mkdir()
    yield BuildDirs(root / "project", root / "project.tmp")
    shutil.rmtree(root)


def run_job(kind, mode, state_dir, launcher, dirs, busybox_rootfs, script) -> str:
    settings = ContainerSettings(
        state_dir=state_dir, network=mode, pids_limit=PIDS_LIMIT, memory=MEMORY_LIMIT
    )
    executor = ContainerExecutor(settings, launcher)
    image = ImageSpec(str(busybox_rootfs)) if kind == "busybox" else None
    job = JobSpec(name="escape", stage="test", stage_index=0, script=("true",), image=image)
    log = Log()
    executor.prepare(job, dirs, log)
    try:
        command = StageCommand("step_script", script, 30, {})
        result = executor.run(command, log, threading.Event())
    finally:
        executor.cleanup()
    output = "".join(log.parts)
    assert result.exit_code == 0, output
    return output


def host_state() -> dict[str, str]:
    state = {}
    for path in [*HOST_FILES, *SYS_WRITES]:
        try:
            state[path] = Path(path).read_text()
        except OSError as exc:
            state[path] = f"unreadable: {exc.strerror}"
    return state


@pytest.fixture
def host_unchanged() -> Iterator[None]:
    """Asserts that the host's cgroup and /sys files are as before, and repairs what a
    failing run may have changed (so one failure does not spoil the machine)."""
    before = host_state()
    yield
    after = host_state()
    candidates = [Path(CG, ESCAPE_DIR), *Path(CG).glob(f"*/{ESCAPE_DIR}")]
    made = [path for path in candidates if path.is_dir()]
    for path in made:
        path.rmdir()
    for path, text in before.items():
        if after[path] != text and path.endswith("release_agent"):
            Path(path).write_text(text or "\n")
    assert made == []
    assert after == before


def assert_refused(output: str, paths: list[str]) -> None:
    lines = output.splitlines()
    for path in paths:
        found = [line for line in lines if line.startswith(("WROTE " + path, "REFUSED " + path))]
        assert found, f"{path}: no attempt in\n{output}"
        assert found[0].startswith("REFUSED"), output
        assert any(refusal in found[0] for refusal in REFUSALS), found[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_cgroup_writes_are_refused(
    state_dir, launcher, dirs, busybox_rootfs, host_unchanged, kind, mode
):
    pids_max = WRITES[0][1]
    attempts = "\n".join(f'attempt {path} "{value}"' for _what, path, value in WRITES)
    cg = f"{CG}/pids" if LAYOUT != "v2" else CG
    script = ATTEMPT.format(attempts=attempts, cg=cg, escape_dir=ESCAPE_DIR, pids_max=pids_max)
    output = run_job(kind, mode, state_dir, launcher, dirs, busybox_rootfs, script)
    assert_refused(output, [path for _what, path, _value in WRITES])
    assert f"REFUSED {cg}/{ESCAPE_DIR}" in output
    assert f"pids.max now: {PIDS_LIMIT}" in output  # the job reads its own limit, unchanged


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_sys_is_read_only_everywhere(
    state_dir, launcher, dirs, busybox_rootfs, host_unchanged, kind, mode
):
    attempts = "\n".join(f'attempt {path} "$(cat {path} 2>/dev/null)"' for path in SYS_WRITES)
    script = ATTEMPT.format(attempts=attempts, cg=CG, escape_dir=ESCAPE_DIR, pids_max=WRITES[0][1])
    output = run_job(kind, mode, state_dir, launcher, dirs, busybox_rootfs, script)
    assert_refused(output, SYS_WRITES)
    mounts = [line.split()[1:] for line in output.splitlines() if line.startswith("MOUNT ")]
    assert any(point == CG for point, _options in mounts), output
    writable = [point for point, options in mounts if "ro" not in options.split(",")]
    assert writable == [], output
    for point, options in mounts:
        assert {"nosuid", "nodev"} <= set(options.split(",")), (point, options)
    assert f"REFUSED {CG}/{ESCAPE_DIR}" in output


HYBRID_MOUNTINFO = """\
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw shared:13 - cgroup cgroup rw,memory,release_agent=/x
36 27 0:33 / /run/other/cgroup rw shared:14 - cgroup cgroup rw,pids
"""
V2_MOUNTINFO = """\
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""


def test_the_cgroup_view_mounts_what_the_host_mounts_without_its_options():
    # only what selects a hierarchy: release_agent or nsdelegate may not be given from inside
    # a cgroup namespace (and would change the host's hierarchy if they could)
    controllers = {"cpu", "cpuacct", "memory", "pids"}
    assert sysfs.cgroup_filesystems(HYBRID_MOUNTINFO, controllers) == [
        ("unified", "cgroup2", ""),
        ("systemd", "cgroup", "name=systemd"),
        ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
        ("memory", "cgroup", "memory"),
    ]
    assert sysfs.cgroup_filesystems(V2_MOUNTINFO, controllers) == [("", "cgroup2", "")]


@pytest.fixture
def sibling_cgroups() -> Iterator[None]:
    """A cgroup beside pyci's containers in every hierarchy (where the fork server's own
    cgroup is), as another job's or a host service's would be."""
    made = []
    for hierarchy in cgroups.discover():
        probe = hierarchy.own_dir / "pyci-escape-sibling"
        probe.mkdir()
        made.append(probe)
    yield
    for probe in made:
        probe.rmdir()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_job_sees_its_own_cgroups_only(
    state_dir, launcher, dirs, busybox_rootfs, sibling_cgroups, kind, mode
):
    # every hierarchy shown is rooted at the container's own cgroup, which has no children:
    # no other container's, service's or host cgroup is visible, not even in a hierarchy
    # pyci makes no cgroup in (there the namespace's root is the fork server's cgroup)
    script = (
        f"find {CG} -mindepth 2 -type d | sed 's/^/CGROUP /'\ncat {WRITES[0][1]} {WRITES[1][1]}\n"
    )
    output = run_job(kind, mode, state_dir, launcher, dirs, busybox_rootfs, script)
    assert [line for line in output.splitlines() if line.startswith("CGROUP ")] == []
    assert output.splitlines()[-2:] == [str(PIDS_LIMIT), str(MEMORY_LIMIT)]
