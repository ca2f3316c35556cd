"""Fixtures for the container runtime tests, and the leftover check run after every test.

Every test here runs real containers (root, namespaces, overlayfs). After each test the
`no_leftovers` fixture asserts that nothing the test made survived it: no mount, cgroup,
network namespace, link or container process. Only this session's objects count: their
names carry the session's id prefix (`PYCI_ID_PREFIX`, set in tests/conftest.py), so other
pyci runs on the machine neither fail the check nor hide a leak; container processes count
when they descend from this process. Objects may vanish while they are listed (another
test's cgroup removed mid-walk): the scan skips what is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from executors.container.names import id_prefix
from executors.container.runtime import Launcher, Scratch, remove_tree
from executors.container.spec import ContainerSpec, Rootfs
from runner.core import background

SESSION_PREFIX = id_prefix()  # this session's own (tests/conftest.py)

# eth0's operstate as a container sees it once the kernel has settled it: the kernel applies a
# link's state change asynchronously (linkwatch, which a loaded machine delays), so a read at
# the container's start may still say "unknown". Waits for "up" (at most 10 s), then prints it.
ETH0_OPERSTATE = (
    'i=0; until [ "$(cat /sys/class/net/eth0/operstate)" = up ] || [ $i -ge 1000 ]; '
    "do i=$((i+1)); sleep 0.01; done; cat /sys/class/net/eth0/operstate"
)


def _mounts() -> set[str]:
    with open("/proc/mounts") as f:
        return {line for line in f if SESSION_PREFIX in line}


def _cgroups() -> set[str]:
    # os.walk skips a directory removed while it is listed (rglob raised ENOENT)
    return {
        os.path.join(parent, name)
        for parent, directories, _ in os.walk("/sys/fs/cgroup")
        for name in directories
        if name.startswith(SESSION_PREFIX)
    }


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if SESSION_PREFIX in line}


def _links() -> set[str]:
    return {name for name in os.listdir("/sys/class/net") if name.startswith(SESSION_PREFIX)}


def _container_processes() -> set[str]:
    """Our descendants living in a nested pid namespace (NSpid lists more than one pid).

    Only descendants of this test process count: other work on the machine may run
    containers of its own at the same time."""
    parents: dict[str, str] = {}
    nested = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:"):
                parents[entry] = line.split()[1]
            elif line.startswith("NSpid:") and len(line.split()) > 2:
                nested.add(entry)
    me = str(os.getpid())
    found = set()
    for pid in nested:
        ancestor, hops = parents.get(pid), 0
        while ancestor and ancestor not in ("0", "1") and hops < 64:
            if ancestor == me:
                found.add(pid)
                break
            ancestor, hops = parents.get(ancestor), hops + 1
    return found


def snapshot() -> dict[str, set[str]]:
    return {
        "mounts": _mounts(),
        "cgroups": _cgroups(),
        "netns": _netns(),
        "links": _links(),
        "processes": _container_processes(),
    }


def leftovers(before: dict[str, set[str]], timeout: float = 3.0) -> dict[str, set[str]]:
    """What exists now but did not before; waits a little, since the kernel tears down a
    network namespace (and its veth) asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        now = snapshot()
        extra = {key: now[key] - before[key] for key in now if now[key] - before[key]}
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    before = snapshot()
    yield
    assert leftovers(before) == {}


@pytest.fixture(scope="session")
def busybox_rootfs() -> Iterator[Path]:
    """A minimal image: the static busybox of the `busybox-static` package and its applets."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static must be installed (apt-get install busybox-static)"
    root = Path(tempfile.mkdtemp(prefix="pyci-busybox-"))
    try:
        for name in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp"):
            (root / name).mkdir(parents=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s"], check=True)
        (root / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
            "build:x:1000:1000:build:/home/build:/bin/sh\n"
        )
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\nbuild:x:1000:\n")
        (root / "tmp").chmod(0o1777)
        yield root
    finally:
        shutil.rmtree(root)


@pytest.fixture(scope="session")
def launcher() -> Iterator[Launcher]:
    launcher = Launcher("serve")
    yield launcher
    launcher.close()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pyci-state-"))
    yield path
    background.finish_removals()  # executors remove their scratch dirs on a background thread
    remove_tree(path)


SpecFactory = Callable[..., ContainerSpec]


@pytest.fixture
def make_spec(state_dir: Path, busybox_rootfs: Path) -> SpecFactory:
    """A spec for `command` over the busybox rootfs (or `lower=`), with fresh scratch dirs."""
    counter = iter(range(1000))

    def factory(*command: str, lower: tuple[str, ...] | None = None, **fields) -> ContainerSpec:
        container_id = f"{SESSION_PREFIX}-test-{os.getpid()}-{next(counter)}"
        scratch = Scratch.create(state_dir, container_id)
        rootfs = Rootfs(
            lower_dirs=lower or (str(busybox_rootfs),),
            upper_dir=scratch.upper,
            work_dir=scratch.work,
            merged_dir=scratch.merged,
            hidden_paths=fields.pop("hidden_paths", ()),
        )
        return ContainerSpec(id=container_id, command=command, rootfs=rootfs, **fields)

    return factory
