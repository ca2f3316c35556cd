"""The device policy, from the threat: root in a job keeps CAP_MKNOD (as in Docker), so it can
make a node for the host's disk, /dev/kvm or /dev/fuse in its writable /dev. Making the node
may succeed, as in Docker; opening it must fail with EPERM. The nodes a container is given
(null, zero, full, random, urandom, tty, ptmx and its own ptys) keep working.

Each case runs a real job through the container executor, in every network mode, on both
kinds of image (a busybox directory, and the host's root as the default image), with the
policy in each place this machine can hold it: a BPF program on the container's cgroup v2
directory (pure v2 driver, and the detected hybrid layout) and the cgroup v1 `devices`
controller (pure v1 driver).
The policy's own parts (the rule table, the BPF assembler, the v1 rules) are checked against
Docker's table and against the kernel further down.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.base import BuildDirs, StageCommand
from executors.container import cgroupfs, cgroups, devicepolicy, devices
from executors.container.cgroupfs import Limits
from executors.container.cgroups_v1 import V1Driver
from executors.container.devicepolicy import DEFAULT_RULES, DeviceRule, allowed
from executors.container.executor import ContainerExecutor, ContainerSettings
from executors.linux import syscalls
from runner.core.jobspec import ImageSpec, JobSpec

EPERM = os.strerror(errno.EPERM)

# (name, kind, major, minor) of nodes a job must not open, whatever it names them
FORBIDDEN = [
    ("kvm", "c", 10, 232),
    ("loop0", "b", 7, 0),
    ("sda", "b", 8, 0),
    ("fuse", "c", 10, 229),
    ("hwrng", "c", 10, 183),
    ("vcs", "c", 7, 0),
    ("console", "c", 5, 1),  # the host's console (Docker allows it; see devicepolicy.py)
    ("tun", "c", 10, 200),
]
# nodes a job may make and use
GIVEN = [
    ("null", "c", 1, 3),
    ("zero", "c", 1, 5),
    ("full", "c", 1, 7),
    ("random", "c", 1, 8),
    ("urandom", "c", 1, 9),
]


def host_disk() -> tuple[str, str, int, int] | None:
    """The machine's own first disk (whatever its major: sda, vda, nvme0n1, ...)."""
    for entry in sorted(Path("/sys/class/block").iterdir()):
        if entry.name.startswith(("loop", "ram", "zram", "dm-", "md")):
            continue
        if (entry / "partition").exists():
            continue
        major, minor = (entry / "dev").read_text().split(":")
        return (f"disk-{entry.name}", "b", int(major), int(minor))
    return None


def probe_script(nodes: list[tuple[str, str, int, int]]) -> str:
    """A POSIX sh script (busybox sh and bash alike) that makes each node in /dev, opens it
    for reading, then for reading and writing, and prints one line per node:
    `probe|NAME|<mknod: ok or failed>|<read: ok or strerror>|<read-write: ok or strerror>`."""
    lines = [
        # a failed redirection prints "...: <strerror>"; keep what follows the last ": "
        'outcome() { if err=$( { eval "$1"; } 2>&1 ); then echo ok; else echo "${err##*: }"; fi; }',
        "probe() {",
        "  node=/dev/pyci-probe-$1",
        '  if mknod "$node" $2 $3 $4; then made=ok; else made=failed; fi',
        '  echo "probe|$1|$made|$(outcome ": <$node")|$(outcome ": <>$node")"',
        "}",
    ]
    lines += [f"probe {name} {kind} {major} {minor}" for name, kind, major, minor in nodes]
    return "\n".join(lines) + "\n"


def parse_probes(text: str) -> dict[str, tuple[str, str, str]]:
    """NAME -> (mknod, read, read-write) outcomes."""
    found = {}
    for line in text.splitlines():
        if line.startswith("probe|"):
            _, name, made, read, read_write = line.split("|")
            found[name] = (made, read, read_write)
    return found


@pytest.fixture
def dirs() -> Iterator[BuildDirs]:
    root = Path(tempfile.mkdtemp(prefix="pyci-dev-"))
    (root / "project").mkdir()
    (root / "project.tmp").mkdir()
    yield BuildDirs(root / "project", root / "project.tmp")
    shutil.rmtree(root)


class Log:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def run_job(executor: ContainerExecutor, job: JobSpec, dirs: BuildDirs, script: str) -> str:
    log = Log()
    executor.prepare(job, dirs, log)
    try:
        result = executor.run(StageCommand("step_script", script, 60, {}), log, threading.Event())
    finally:
        executor.cleanup()
    assert result.exit_code == 0, log.text
    return log.text


# where the policy is held, and the cgroup layout that puts it there on this hybrid machine
POLICY_PLACES = {
    "v2-bpf-program": "v2",  # the pure v2 driver
    "hybrid-bpf-program": None,  # the detected layout: the program on the v2 tracker
    "v1-devices-controller": "v1",  # the pure v1 driver
}


@pytest.fixture(params=list(POLICY_PLACES))
def cgroup_layout(request) -> str | None:
    layout = POLICY_PLACES[request.param]
    driver = cgroups.shared_driver(layout)
    if request.param == "v1-devices-controller":
        assert isinstance(driver, V1Driver) and driver.policy_on_v1
    elif request.param == "hybrid-bpf-program":
        assert isinstance(driver, V1Driver) and driver.layout == "hybrid"
        assert driver.tracker is not None and driver.tracker.device_policy
    return layout


@pytest.mark.parametrize("network", ["none", "host", "bridge"])
@pytest.mark.parametrize("image", ["busybox", "host-root"])
def test_root_can_make_device_nodes_but_not_open_them(
    state_dir, launcher, dirs, busybox_rootfs, cgroup_layout, network, image
):
    disk = host_disk()
    forbidden = FORBIDDEN + ([disk] if disk else [])
    nodes = forbidden + GIVEN
    settings = ContainerSettings(state_dir=state_dir, network=network, cgroup_layout=cgroup_layout)
    executor = ContainerExecutor(settings, launcher)
    job = JobSpec(
        name="devices",
        stage="test",
        stage_index=0,
        script=("true",),
        image=ImageSpec(str(busybox_rootfs)) if image == "busybox" else None,
    )
    text = run_job(executor, job, dirs, 'echo "uid $(id -u)"\n' + probe_script(nodes))
    assert "uid 0" in text.splitlines()  # root, with Docker's capabilities
    probes = parse_probes(text)
    assert set(probes) == {name for name, *_ in nodes}
    for name, *_ in forbidden:
        # mknod succeeds (CAP_MKNOD, as in Docker); opening the node does not
        assert probes[name] == ("ok", EPERM, EPERM), name
    for name, *_ in GIVEN:
        assert probes[name] == ("ok", "ok", "ok"), name


@pytest.mark.parametrize("image", ["busybox", "host-root"])
def test_the_given_nodes_still_work(
    state_dir, launcher, dirs, busybox_rootfs, cgroup_layout, image
):
    settings = ContainerSettings(state_dir=state_dir, network="none", cgroup_layout=cgroup_layout)
    executor = ContainerExecutor(settings, launcher)
    job = JobSpec(
        name="devices",
        stage="test",
        stage_index=0,
        script=("true",),
        image=ImageSpec(str(busybox_rootfs)) if image == "busybox" else None,
    )
    script = (
        "echo urandom $(head -c 16 /dev/urandom | wc -c)\n"
        "echo random $(head -c 16 /dev/random | wc -c)\n"
        "echo zero $(head -c 5 /dev/zero | tr '\\0' z)\n"
        "echo null $(echo gone >/dev/null && wc -c </dev/null)\n"
        "echo full $( { echo x >/dev/full; } 2>&1 | sed 's/.*: //')\n"
        # no controlling terminal: the tty driver (not the policy) says ENXIO, as in Docker
        "echo tty $( { : <>/dev/tty; } 2>&1 | sed 's/.*: //')\n"
        "exec 3<>/dev/ptmx && echo ptmx $(ls /dev/pts | grep -c '^0$')\n"
        "exec 3>&-\n"
    )
    if image == "host-root":  # a pty pair of the container's own devpts, both ends used
        script += (
            'python3 -c \'import os; m, s = os.openpty(); os.write(s, b"pty-ok\\n"); '
            'print("pts", os.ttyname(s), os.read(m, 64).decode().split()[0])\'\n'
        )
    lines = run_job(executor, job, dirs, script).splitlines()
    expected = [
        "urandom 16",
        "random 16",
        "zero zzzzz",
        "null 0",
        f"full {os.strerror(errno.ENOSPC)}",
        f"tty {os.strerror(errno.ENXIO)}",
        "ptmx 1",
    ]
    if image == "host-root":
        expected.append("pts /dev/pts/0 pty-ok")
    assert lines[-len(expected) :] == expected


def test_a_terminal_is_usable_through_dev_tty(
    state_dir, launcher, dirs, busybox_rootfs, cgroup_layout
):
    """With a controlling terminal (pyci shell), /dev/tty (5:0) opens: the policy allows it."""
    settings = ContainerSettings(state_dir=state_dir, network="none", cgroup_layout=cgroup_layout)
    executor = ContainerExecutor(settings, launcher)
    job = JobSpec(
        name="devices", stage="test", stage_index=0, script=("true",),
        image=ImageSpec(str(busybox_rootfs)),
    )  # fmt: skip
    executor.prepare(job, dirs, Log())
    primary, secondary = os.openpty()
    try:
        code = executor.interactive_shell(
            secondary, secondary, secondary, command=("sh", "-c", "echo via-dev-tty >/dev/tty")
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: no writer left
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
        executor.cleanup()
    assert (code, output.decode().strip()) == (0, "via-dev-tty")


# --- the policy's parts ---------------------------------------------------------------------

# Docker's effective default, in order, from moby's default spec (daemon/pkg/oci/defaults.go)
# followed by runc's default allowed devices (libcontainer/specconv AllowedDevices, 1.2.4+).
# (allow, kind, major, minor, access); the last matching rule decides.
DOCKER_DEFAULT = [
    (False, "a", None, None, "rwm"),
    (True, "c", 1, 5, "rwm"),
    (True, "c", 1, 3, "rwm"),
    (True, "c", 1, 9, "rwm"),
    (True, "c", 1, 8, "rwm"),
    (True, "c", 5, 0, "rwm"),
    (True, "c", 5, 1, "rwm"),
    (False, "c", 10, 229, "rwm"),
    (True, "c", None, None, "m"),
    (True, "b", None, None, "m"),
    (True, "c", 1, 3, "rwm"),
    (True, "c", 1, 8, "rwm"),
    (True, "c", 1, 7, "rwm"),
    (True, "c", 5, 0, "rwm"),
    (True, "c", 1, 5, "rwm"),
    (True, "c", 1, 9, "rwm"),
    (True, "c", 136, None, "rwm"),
    (True, "c", 5, 2, "rwm"),
    (True, "c", 10, 200, "rwm"),
]
# where pyci is stricter on purpose (devicepolicy.py says why)
STRICTER_THAN_DOCKER = {("c", 5, 1), ("c", 10, 200)}


def docker_allows(kind: str, major: int, minor: int, access: str) -> bool:
    """Docker's answer, one access letter at a time, as runc's device emulator decides."""
    for letter in access:
        verdict = False
        for allow, rule_kind, rule_major, rule_minor, rule_access in DOCKER_DEFAULT:
            if (
                rule_kind in ("a", kind)
                and rule_major in (None, major)
                and rule_minor in (None, minor)
                and letter in rule_access
            ):
                verdict = allow
        if not verdict:
            return False
    return True


ACCESSES = ["r", "w", "m", "rw", "rwm", "rm"]
SAMPLE_DEVICES = [
    (kind, major, minor)
    for kind in ("c", "b")
    for major, minor in [
        (1, 1), (1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (1, 11), (4, 0), (5, 0), (5, 1),
        (5, 2), (7, 0), (8, 0), (10, 183), (10, 200), (10, 229), (10, 232), (136, 0),
        (136, 7), (254, 0), (259, 0),
    ]
]  # fmt: skip


def test_rule_table_answers_as_dockers_default_but_for_console_and_tun():
    differences = set()
    for kind, major, minor in SAMPLE_DEVICES:
        for access in ACCESSES:
            ours = allowed(kind, major, minor, access)
            if ours != docker_allows(kind, major, minor, access):
                assert ours is False, (kind, major, minor, access)  # never looser
                differences.add((kind, major, minor))
    assert differences == STRICTER_THAN_DOCKER


def test_every_node_the_container_gets_is_allowed():
    for name, (major, minor) in devices.STANDARD_NODES.items():
        assert allowed("c", major, minor, "rwm"), name
    assert allowed("c", 5, 2, "rw") and allowed("c", 136, 0, "rw")  # /dev/ptmx, /dev/pts/N


def test_rules_read_as_cgroup_v1_writes_them():
    writes = devicepolicy.v1_writes()
    assert writes[0] == ("devices.deny", "a")
    assert writes[1:4] == [
        ("devices.allow", "c *:* m"),
        ("devices.allow", "b *:* m"),
        ("devices.allow", "c 1:3 rwm"),
    ]
    assert ("devices.allow", "c 136:* rwm") in writes
    assert len(writes) == 1 + len(DEFAULT_RULES)
    # v1 would read "a 7:* r" as "allow everything": a rule for either kind is written twice
    either = devicepolicy.v1_writes((DeviceRule("a", 7, None, "r"),))
    assert either[1:] == [("devices.allow", "c 7:* r"), ("devices.allow", "b 7:* r")]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (("x", 1, 3, "rwm"), "kind"),
        (("c", 1, 3, "rwx"), "access"),
        (("c", 1, 3, ""), "access"),
        (("c", 4096, 0, "r"), "major"),
        (("c", 1, 1 << 20, "r"), "minor"),
    ],
)
def test_a_malformed_rule_is_refused(fields, problem):
    with pytest.raises(ValueError, match=problem):
        DeviceRule(*fields)


def test_the_verifier_accepts_the_program():
    fd = devicepolicy.load_program()
    try:
        info = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
        )
        assert info["prog_type"].strip() == str(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE)
        assert int(info["verified_insns"]) > 0
    finally:
        os.close(fd)


def test_a_program_the_verifier_refuses_names_its_reason():
    # r0 is never set before exit: the verifier says so, and the error carries its words
    refusal = r"BPF_PROG_LOAD.*: Permission denied; verifier: R0 !read_ok$"
    with pytest.raises(OSError, match=refusal):
        syscalls.bpf_prog_load(
            syscalls.BPF_PROG_TYPE_CGROUP_DEVICE,
            bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
            "pyci_bad",
            syscalls.BPF_CGROUP_DEVICE,
        )


# Rules that use every feature of the assembler: any kind, a wildcard major or minor, and
# partial access. The kernel runs them on real opens and mknods, and must answer as `allowed`.
CUSTOM_RULES = (
    DeviceRule("a", 7, None, "r"),
    DeviceRule("c", 1, 3, "w"),
    DeviceRule("b", None, None, "m"),
    DeviceRule("c", None, 9, "rw"),
)
KERNEL_PROBES = [  # (how, path to open, open flags, kind, major, minor, access)
    ("open", "/dev/null", os.O_RDONLY, "c", 1, 3, "r"),
    ("open", "/dev/null", os.O_WRONLY, "c", 1, 3, "w"),
    ("open", "/dev/null", os.O_RDWR, "c", 1, 3, "rw"),
    ("open", "/dev/urandom", os.O_RDWR, "c", 1, 9, "rw"),
    ("open", "/dev/zero", os.O_RDONLY, "c", 1, 5, "r"),
    ("open", "/dev/vcs", os.O_RDONLY, "c", 7, 0, "r"),
    ("open", "/dev/vcs", os.O_WRONLY, "c", 7, 0, "w"),
    ("open", "/dev/loop0", os.O_RDONLY, "b", 7, 0, "r"),
    ("open", "/dev/loop0", os.O_RDWR, "b", 7, 0, "rw"),
    ("mknod", "", 0, "b", 8, 0, "m"),
    ("mknod", "", 0, "c", 1, 3, "m"),
    ("mknod", "", 0, "c", 10, 232, "m"),
]

PROBE_PROGRAM = """
import os, stat, sys
for how, what, flags, kind, major, minor in eval(sys.argv[1]):
    try:
        if how == "open":
            os.close(os.open(what, flags))
        else:
            path = f"{sys.argv[2]}/{kind}{major}-{minor}"
            mode = (stat.S_IFBLK if kind == "b" else stat.S_IFCHR) | 0o600
            os.mknod(path, mode, os.makedev(major, minor))
            os.unlink(path)
        print("allowed")
    except PermissionError:
        print("denied")
"""


def kernel_verdicts(cgroup_dir: str, tmp_path: Path) -> list[bool]:
    """Run the probes in a fresh process that first moves itself into `cgroup_dir`."""
    probes = [probe[:6] for probe in KERNEL_PROBES]
    missing = [path for how, path, *_ in probes if how == "open" and not Path(path).exists()]
    assert missing == [], "this machine lacks a probed device node"
    done = subprocess.run(
        [
            "sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup_dir,
            "python3", "-c", PROBE_PROGRAM, repr(probes), str(tmp_path),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [line == "allowed" for line in done.stdout.split()]


def expected_verdicts() -> list[bool]:
    return [
        allowed(kind, major, minor, access, CUSTOM_RULES)
        for *_, kind, major, minor, access in KERNEL_PROBES
    ]


def test_the_bpf_program_answers_as_its_rules(tmp_path):
    driver = cgroups.open_driver("v2")
    directory = driver.parent / f"pyci-test-bpf-{os.getpid()}"
    directory.mkdir()
    program = devicepolicy.load_program(CUSTOM_RULES)
    try:
        target = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            syscalls.bpf_prog_attach(
                target, program, syscalls.BPF_CGROUP_DEVICE, syscalls.BPF_F_ALLOW_MULTI
            )
        finally:
            os.close(target)
        verdicts = kernel_verdicts(str(directory), tmp_path)
    finally:
        os.close(program)
        cgroupfs.remove_dir(directory)
    assert verdicts == expected_verdicts()
    assert verdicts.count(True) >= 4 and verdicts.count(False) >= 4  # both answers were seen


def test_the_v1_rules_answer_as_the_bpf_program(tmp_path):
    parent = Path("/sys/fs/cgroup/devices")
    if not (parent / "devices.allow").exists():
        pytest.fail("this machine's devices controller is expected on cgroup v1")
    directory = parent / f"pyci-test-v1dev-{os.getpid()}"
    directory.mkdir()
    try:
        for filename, value in devicepolicy.v1_writes(CUSTOM_RULES):
            cgroupfs.write(directory / filename, value)
        verdicts = kernel_verdicts(str(directory), tmp_path)
    finally:
        cgroupfs.remove_dir(directory)
    assert verdicts == expected_verdicts()


def test_the_v2_driver_attaches_one_shared_program_to_each_cgroup():
    driver = cgroups.open_driver("v2")
    first = driver.create(f"pyci-test-attach-a-{os.getpid()}", Limits())
    second = driver.create(f"pyci-test-attach-b-{os.getpid()}", Limits())
    try:
        ids = []
        for cgroup in (first, second):
            target = os.open(cgroup.v2_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                flags, attached = syscalls.bpf_prog_query(target, syscalls.BPF_CGROUP_DEVICE)
            finally:
                os.close(target)
            assert flags == syscalls.BPF_F_ALLOW_MULTI
            assert len(attached) == 1
            ids.extend(attached)
        assert ids[0] == ids[1]  # loaded once, attached twice
    finally:
        first.remove()
        second.remove()
