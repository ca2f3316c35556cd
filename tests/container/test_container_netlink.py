"""The rtnetlink requests of the bridge network, checked against what the kernel then shows."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from executors.container import netlink

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="link changes need root")


@pytest.fixture
def bridge_name():
    name = f"pycitest{os.getpid() % 10000}"
    yield name
    netlink.delete_link(name)


def test_bridge_address_and_deletion(bridge_name):
    assert netlink.link_index(bridge_name) is None
    netlink.add_bridge(bridge_name)
    index = netlink.link_index(bridge_name)
    assert index is not None
    assert Path(f"/sys/class/net/{bridge_name}/bridge").is_dir()
    with pytest.raises(FileExistsError):
        netlink.add_bridge(bridge_name)
    assert netlink.add_address(index, "10.214.7.1", 24) is True
    assert netlink.add_address(index, "10.214.7.1", 24) is False
    shown = subprocess.run(
        ["ip", "-4", "addr", "show", "dev", bridge_name], capture_output=True, text=True
    ).stdout
    assert "10.214.7.1/24" in shown
    assert netlink.delete_link(bridge_name) is True
    assert netlink.link_index(bridge_name) is None
    assert netlink.delete_link(bridge_name) is False


def test_veth_peer_is_born_in_the_other_namespace(bridge_name):
    netlink.add_bridge(bridge_name)
    master = netlink.link_index(bridge_name)
    assert master is not None
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "read _; ip -o link show eth0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    host_link = f"{bridge_name}v"
    try:
        # unshare execs sh in the new namespace: wait until its pid is that namespace's
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/net") == own:
            assert time.monotonic() < deadline, "unshare --net did not start"
            time.sleep(0.005)
        netlink.add_veth(host_link, master, 1400, "eth0", holder.pid)
        inside, _ = holder.communicate("\n", timeout=10)
        assert "eth0" in inside and "mtu 1400" in inside
        sysfs = Path(f"/sys/class/net/{host_link}")
        assert (sysfs / "master").resolve().name == bridge_name
        assert (sysfs / "mtu").read_text().strip() == "1400"
        assert int((sysfs / "flags").read_text(), 16) & 0x1  # up
    finally:
        holder.kill()
        holder.wait()
        netlink.delete_link(host_link)


def test_missing_link_is_reported_as_none():
    assert netlink.link_index("pyci-no-such") is None
    assert netlink.delete_link("pyci-no-such") is False


def test_links_removed_later_are_gone_once_removals_finish(bridge_name):
    from executors.container import network

    netlink.add_bridge(bridge_name)
    network.remove_link_later(bridge_name)
    network.remove_link_later("pyci-no-such")  # nothing to do, nothing queued
    network.finish_link_removals()
    assert netlink.link_index(bridge_name) is None


def test_the_link_remover_leaves_no_thread_behind(bridge_name):
    import threading

    from executors.container import network

    netlink.add_bridge(bridge_name)
    network.remove_link_later(bridge_name)
    network.finish_link_removals()
    assert "pyci-link-remover" not in [t.name for t in threading.enumerate()]
