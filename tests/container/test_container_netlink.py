"""The host side of the bridge network (hostbridge.py, netlink.py): the link changes it
makes, checked against what the kernel then shows, its errors, the stragglers `finish`
deletes, and where pyroute2 is imported (on first use in pyci's process, never in the fork
server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.container import hostbridge, network
from executors.container.hostbridge import HostNetworkError
from executors.container.network import BRIDGE_NAME, DEFAULT_SUBNET
from tests.container.conftest import ETH0_OPERSTATE, SESSION_PREFIX

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="link changes need root")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[str]]:
    """A process in a network namespace of its own; prints its eth0 once told to."""
    process = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "read _; ip -o link show eth0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    # unshare execs sh in the new namespace: wait until its pid is that namespace's
    own = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{process.pid}/ns/net") == own:
        assert time.monotonic() < deadline, "unshare --net did not start"
        time.sleep(0.005)
    yield process
    process.kill()
    process.wait()


def exists(link: str) -> bool:
    return Path(f"/sys/class/net/{link}").exists()


def wait_gone(link: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while exists(link) and time.monotonic() < deadline:
        time.sleep(0.005)
    return not exists(link)


def test_the_bridge_has_its_address_is_up_and_nats():
    hostbridge.ensure_bridge(BRIDGE_NAME, DEFAULT_SUBNET)
    sysfs = Path(f"/sys/class/net/{BRIDGE_NAME}")
    assert (sysfs / "bridge").is_dir()
    assert int((sysfs / "flags").read_text(), 16) & 0x1  # up
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", BRIDGE_NAME], capture_output=True, text=True
    ).stdout
    assert "10.213.0.1/24" in shown
    nat = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True,
                         text=True).stdout  # fmt: skip
    assert any(DEFAULT_SUBNET in rule and "MASQUERADE" in rule for rule in nat.splitlines())
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


def test_the_veth_peer_is_born_in_the_other_namespace_and_dies_with_it(holder):
    hostbridge.ensure_bridge(BRIDGE_NAME, DEFAULT_SUBNET)
    host_link = f"{SESSION_PREFIX}v"
    hostbridge.add_veth(host_link, BRIDGE_NAME, 1400, "eth0", holder.pid)
    sysfs = Path(f"/sys/class/net/{host_link}")
    assert (sysfs / "master").resolve().name == BRIDGE_NAME
    assert (sysfs / "mtu").read_text().strip() == "1400"
    assert int((sysfs / "flags").read_text(), 16) & 0x1  # up
    inside, _ = holder.communicate("\n", timeout=10)
    assert "eth0" in inside and "mtu 1400" in inside
    # the namespace is gone with its last process: the kernel removes the pair by itself
    assert wait_gone(host_link)


def test_delete_link_says_whether_there_was_one():
    name = f"{SESSION_PREFIX}x"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        assert hostbridge.delete_link(name) is True
        assert not exists(name)
        assert hostbridge.delete_link(name) is False
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_failures_are_one_line_errors_naming_what_failed():
    with pytest.raises(HostNetworkError, match=r"^bridge pyci-nosuch does not exist$"):
        hostbridge.add_veth("pycitx", "pyci-nosuch", 1500, "eth0", 1)
    hostbridge.ensure_bridge(BRIDGE_NAME, DEFAULT_SUBNET)
    dead = 2**22 + 1  # beyond pid_max: never a live process
    with pytest.raises(HostNetworkError) as caught:
        hostbridge.add_veth("pycitx", BRIDGE_NAME, 1500, "eth0", dead)
    assert str(caught.value) == (
        f"cannot create veth pycitx with its peer in the network namespace of pid {dead}: "
        "No such process"
    )
    assert caught.value.errno == 3
    assert not exists("pycitx")


def test_threads_share_the_socket_and_each_gets_its_own_answer():
    names = [f"{SESSION_PREFIX}n{i}" for i in range(8)]
    subprocess.run(["ip", "link", "add", names[0], "type", "bridge"], check=True)
    answers: dict[str, object] = {}

    def ask(name: str) -> None:
        answers[name] = hostbridge.delete_link(name)

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == {name: name == names[0] for name in names}


def test_finish_waits_for_the_kernel_and_deletes_only_stragglers(holder):
    alive = f"{SESSION_PREFIX}a"
    network.ensure_bridge()
    net = network.NetworkSpec("bridge", "10.213.0.250/24", "10.213.0.1", BRIDGE_NAME, alive)
    network.attach_veth(net, holder.pid)  # its namespace outlives the deadline
    assert exists(alive)
    started = time.monotonic()
    assert network.finish(timeout=0.2) == [alive]
    assert time.monotonic() - started >= 0.2
    assert not exists(alive)


def test_finish_does_not_delete_what_the_kernel_removes(holder):
    dying = f"{SESSION_PREFIX}d"
    network.ensure_bridge()
    net = network.NetworkSpec("bridge", "10.213.0.250/24", "10.213.0.1", BRIDGE_NAME, dying)
    network.attach_veth(net, holder.pid)
    holder.kill()
    assert network.finish(timeout=5) == []
    assert not exists(dying)


FORK_SERVER_IMPORTS = """
import sys
import executors.container.launcher  # the fork server and the containers' PID 1
print(sorted(name for name in sys.modules if name.partition(".")[0] == "pyroute2"))
"""


def test_the_fork_server_never_imports_pyroute2():
    """PID 1 is forked from the fork server: it stays small (pyroute2 is ~10 MB of modules)."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", FORK_SERVER_IMPORTS],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


BRIDGE_CONTAINER = """
import json, sys
from pathlib import Path
from executors.container import network
from executors.container.runtime import Launcher, Scratch, run_container
from executors.container.spec import ContainerSpec, NetworkSpec, Rootfs

before = "pyroute2" in sys.modules
rootfs, state, operstate = sys.argv[1], sys.argv[2], sys.argv[3]
scratch = Scratch.create(Path(state), "pyci-lazyroute2")
bridge = network.ensure_bridge()
spec = ContainerSpec(
    id="pyci-lazyroute2", command=("sh", "-c", operstate),
    rootfs=Rootfs((rootfs,), scratch.upper, scratch.work, scratch.merged),
    network=NetworkSpec("bridge", "10.213.0.251/24", bridge.gateway, bridge.name,
                        network.host_link_name("pyci-lazyroute2")),
)
launcher = Launcher("serve")
try:
    result, out = run_container(launcher, spec, timeout=20)
finally:
    launcher.close()
network.finish()
print(json.dumps({"exit": result.exit_code, "out": out.decode(), "before": before,
                  "after": "pyroute2" in sys.modules}))
"""


def test_pyroute2_is_imported_by_the_first_bridge_container(busybox_rootfs, state_dir):
    done = subprocess.run(
        [sys.executable, "-c", BRIDGE_CONTAINER, str(busybox_rootfs), str(state_dir),
         ETH0_OPERSTATE],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = {"exit": 0, "out": "up\n", "before": False, "after": True}
    assert json.loads(done.stdout) == expected
