"""The network helper (netd): the link requests it serves, checked against what the kernel then
shows, its errors, its life (it never outlives pyci), and that pyci itself never imports
pyroute2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.container import network
from executors.container.netd import Netd, NetdError, helper_command
from executors.container.network import BRIDGE_NAME, DEFAULT_SUBNET
from tests.container.conftest import ETH0_OPERSTATE, SESSION_PREFIX

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="link changes need root")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def helper() -> Iterator[Netd]:
    netd = Netd()
    yield netd
    netd.close()


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


def test_the_bridge_has_its_address_is_up_and_nats(helper):
    assert helper.call("ensure_bridge", name=BRIDGE_NAME, subnet=DEFAULT_SUBNET) is None
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


def test_the_veth_peer_is_born_in_the_other_namespace_and_dies_with_it(helper, holder):
    helper.call("ensure_bridge", name=BRIDGE_NAME, subnet=DEFAULT_SUBNET)
    host_link = f"{SESSION_PREFIX}v"
    helper.call("add_veth", host=host_link, bridge=BRIDGE_NAME, mtu=1400, peer="eth0",
                pid=holder.pid)  # fmt: skip
    sysfs = Path(f"/sys/class/net/{host_link}")
    assert (sysfs / "master").resolve().name == BRIDGE_NAME
    assert (sysfs / "mtu").read_text().strip() == "1400"
    assert int((sysfs / "flags").read_text(), 16) & 0x1  # up
    inside, _ = holder.communicate("\n", timeout=10)
    assert "eth0" in inside and "mtu 1400" in inside
    # the namespace is gone with its last process: the kernel removes the pair by itself
    assert wait_gone(host_link)


def test_delete_link_says_whether_there_was_one(helper):
    name = f"{SESSION_PREFIX}x"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        assert helper.call("delete_link", name=name) is True
        assert not exists(name)
        assert helper.call("delete_link", name=name) is False
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_failures_are_one_line_errors_naming_what_failed(helper):
    with pytest.raises(NetdError, match=r"^bridge pyci-nosuch does not exist$"):
        helper.call("add_veth", host="pycitx", bridge="pyci-nosuch", mtu=1500, peer="eth0", pid=1)
    helper.call("ensure_bridge", name=BRIDGE_NAME, subnet=DEFAULT_SUBNET)
    dead = 2**22 + 1  # beyond pid_max: never a live process
    with pytest.raises(NetdError) as caught:
        helper.call("add_veth", host="pycitx", bridge=BRIDGE_NAME, mtu=1500, peer="eth0", pid=dead)
    assert str(caught.value) == (
        f"cannot create veth pycitx with its peer in the network namespace of pid {dead}: "
        "No such process"
    )
    assert caught.value.errno == 3
    assert not exists("pycitx")


def test_a_helper_without_pyroute2_says_so():
    """Without `site` and with only our repository on its path, pyroute2 is not importable."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with theirs:
        process = subprocess.Popen(helper_command(theirs.fileno()), pass_fds=[theirs.fileno()],
                                   env=env, cwd="/")  # fmt: skip
    with ours:
        ours.send(json.dumps({"op": "delete_link", "name": "pyci-nosuch"}).encode())
        reply = json.loads(ours.recv(65536))
    assert process.wait(timeout=10) == 0
    assert reply["error"].startswith("cannot import pyroute2 in the network helper (No module")


LEAN_IMPORT_PROBE = """
import sys
if sys.argv[1] == "broken":
    sys.modules["pyroute2.config.log"] = None  # the lean way fails: a full import must follow
from executors.container import netlink
ipr = netlink.IPRoute()
ipr.close()
print("ndb" if "pyroute2.ndb" in sys.modules else "lean", netlink.NetlinkError.__name__)
"""


@pytest.mark.parametrize("case", ["lean", "broken"])
def test_pyroute2_is_imported_without_its_package_init_or_else_fully(case):
    """netd imports only IPRoute's modules (the package __init__ imports NDB, IPDB, ...); if
    that way fails, pyroute2 is imported as usual, and works either way."""
    done = subprocess.run(
        [sys.executable, "-c", LEAN_IMPORT_PROBE, case],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = "lean NetlinkError" if case == "lean" else "ndb NetlinkError"
    assert done.stdout.strip() == expected


def test_a_helper_that_cannot_start_is_a_clear_error(helper, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with pytest.raises(NetdError, match=r"^cannot start the network helper \(/nonexistent/"):
        helper.call("delete_link", name="pyci-nosuch")


def test_a_helper_that_died_is_reported_then_replaced(helper):
    assert helper.call("delete_link", name="pyci-nosuch") is False
    first = helper.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    with pytest.raises(NetdError, match=r"^the network helper exited \(exit status -9\)$"):
        helper.call("delete_link", name="pyci-nosuch")
    assert helper.call("delete_link", name="pyci-nosuch") is False
    assert helper.pid not in (None, first)


def test_the_helper_exits_when_its_owner_dies():
    """pyci killed with SIGKILL: the helper's socket reaches EOF and it exits."""
    script = (
        "import sys; from executors.container.netd import Netd; n = Netd(); "
        "n.call('delete_link', name='pyci-nosuch'); print(n.pid, flush=True); sys.stdin.read()"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while True:  # gone (reaped by init) or a zombie
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        assert time.monotonic() < deadline, "the network helper outlived its owner"
        time.sleep(0.01)


def test_a_helper_busy_with_unread_work_is_killed_with_its_children_at_close(helper):
    """A run that failed to load does not wait for the bridge it asked for early."""
    helper.submit("ensure_bridge", keep=False, name=BRIDGE_NAME, subnet=DEFAULT_SUBNET)
    process = helper._process
    assert process is not None
    helper.close()
    assert process.returncode == -signal.SIGKILL
    group = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == process.pid:  # its process group
            group.append(entry)
    assert group == []
    assert helper.call("ensure_bridge", name=BRIDGE_NAME, subnet=DEFAULT_SUBNET) is None


def test_replies_reach_the_thread_that_asked(helper):
    helper.submit("ensure_bridge", keep=False, name=BRIDGE_NAME, subnet=DEFAULT_SUBNET)
    names = [f"{SESSION_PREFIX}n{i}" for i in range(8)]
    subprocess.run(["ip", "link", "add", names[0], "type", "bridge"], check=True)
    answers: dict[str, object] = {}

    def ask(name: str) -> None:
        answers[name] = helper.call("delete_link", name=name)

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


PYCI_PROCESS = """
import dataclasses, json, sys
from executors.container import network
from executors.container.runtime import Launcher, Scratch, run_container
from executors.container.spec import ContainerSpec, NetworkSpec, Rootfs

rootfs, state, operstate = sys.argv[1], sys.argv[2], sys.argv[3]
from pathlib import Path
scratch = Scratch.create(Path(state), "pyci-nopyroute2")
bridge = network.ensure_bridge()
spec = ContainerSpec(
    id="pyci-nopyroute2", command=("sh", "-c", operstate),
    rootfs=Rootfs((rootfs,), scratch.upper, scratch.work, scratch.merged),
    network=NetworkSpec("bridge", "10.213.0.251/24", bridge.gateway, bridge.name,
                        network.host_link_name("pyci-nopyroute2")),
)
launcher = Launcher("serve")
try:
    result, out = run_container(launcher, spec, timeout=20)
finally:
    launcher.close()
network.finish()
print(json.dumps({"exit": result.exit_code, "out": out.decode(),
                  "pyroute2": sorted(m for m in sys.modules if m.startswith("pyroute2"))}))
"""


def test_pyci_runs_a_bridge_container_without_importing_pyroute2(busybox_rootfs, state_dir):
    done = subprocess.run(
        [sys.executable, "-c", PYCI_PROCESS, str(busybox_rootfs), str(state_dir), ETH0_OPERSTATE],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"exit": 0, "out": "up\n", "pyroute2": []}


def test_a_bridge_run_starts_the_helper_at_once_and_stops_it_at_its_end():
    from runner.commands.run import executor_process

    network.finish()  # whatever earlier tests started
    with executor_process("container"):  # no network named: the helper waits for first use
        assert network._helper.pid is None
    with executor_process("container", "none"):
        assert network._helper.pid is None
    with executor_process("container", "bridge"):
        pid = network._helper.pid
        assert pid is not None and Path(f"/proc/{pid}").exists()
        assert network.ensure_bridge().name == BRIDGE_NAME
    assert network._helper.pid is None
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped
