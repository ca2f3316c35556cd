"""Container networks: `none` (only a loopback), `host` (the host's stack) and `bridge`.

`bridge` is Docker's default shape built with pyroute2: one `pyci0` bridge on the host with the
gateway address, NAT for traffic leaving the private range, and per container a veth pair whose
inner end is `eth0` with an address from the range. The launcher's keeper creates the pair
from inside the new network namespace (a netlink socket opened before `unshare` still speaks to
the host's namespace), so the pair is destroyed by the kernel together with the namespace: a
link cannot outlive its container, even after `kill -9`.

Addresses are leased as files under `<state>/ipam/` created with O_EXCL and holding the owner's
pid, so concurrent pyci runs never share an address and stale leases can be recovered.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executors.container.spec import NetworkSpec

BRIDGE_NAME = "pyci0"
DEFAULT_SUBNET = "10.213.0.0/24"

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def preload() -> None:
    """Import pyroute2 once in the fork server, so keepers do not pay ~150 ms each."""
    import pyroute2  # noqa: F401


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def before_unshare(net: NetworkSpec) -> Any:
    """In the keeper, before unshare: a netlink socket bound to the host's namespace."""
    if net.mode != "bridge":
        return None
    from pyroute2 import IPRoute

    return IPRoute()


def after_unshare(net: NetworkSpec, host: Any) -> None:
    """In the keeper, inside the new network namespace: loopback, and the veth for bridge."""
    if net.mode == "host":
        return
    loopback_up()
    if net.mode != "bridge":
        return
    from pyroute2 import IPRoute

    assert net.address and net.gateway and net.bridge and net.host_link
    inner = IPRoute()
    try:
        bridge_index = host.link_lookup(ifname=net.bridge)
        if not bridge_index:
            raise OSError(f"bridge {net.bridge} does not exist")
        host.link(
            "add",
            ifname=net.host_link,
            kind="veth",
            mtu=net.mtu,
            peer={"ifname": "eth0", "net_ns_pid": os.getpid(), "mtu": net.mtu},
        )
        host_index = host.link_lookup(ifname=net.host_link)[0]
        host.link("set", index=host_index, master=bridge_index[0], state="up")
        eth0 = inner.link_lookup(ifname="eth0")[0]
        address, prefix = net.address.split("/")
        inner.addr("add", index=eth0, address=address, prefixlen=int(prefix))
        inner.link("set", index=eth0, state="up")
        inner.route("add", dst="0.0.0.0/0", gateway=net.gateway)
    finally:
        inner.close()
        host.close()


# --- host side, used by the runtime ---------------------------------------------------------


@dataclass(frozen=True)
class Bridge:
    name: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))


_ensured: dict[tuple[str, str], Bridge] = {}
_ensure_lock = threading.Lock()


def ensure_bridge(name: str = BRIDGE_NAME, subnet: str = DEFAULT_SUBNET) -> Bridge:
    """Create the bridge with its gateway address and NAT if missing; checked once per
    process (the iptables checks cost ~100 ms)."""
    with _ensure_lock:
        key = (name, subnet)
        if key not in _ensured or not os.path.exists(f"/sys/class/net/{name}"):
            _ensured[key] = _ensure_bridge(name, subnet)
        return _ensured[key]


def _ensure_bridge(name: str, subnet: str) -> Bridge:
    from pyroute2 import IPRoute

    bridge = Bridge(name, ipaddress.IPv4Network(subnet))
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=name):
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except Exception as exc:  # another pyci run may have won the race
                if not ipr.link_lookup(ifname=name):
                    raise OSError(f"cannot create bridge {name}: {exc}") from exc
        index = ipr.link_lookup(ifname=name)[0]
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)}
        if bridge.gateway not in have:
            ipr.addr("add", index=index, address=bridge.gateway, prefixlen=bridge.subnet.prefixlen)
        ipr.link("set", index=index, state="up")
    _enable_nat(bridge)
    return bridge


def _enable_nat(bridge: Bridge) -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    rules = [
        ["-t", "nat", "POSTROUTING", "-s", str(bridge.subnet), "!", "-o", bridge.name,
         "-j", "MASQUERADE", "-m", "comment", "--comment", "pyci"],
        ["-t", "filter", "FORWARD", "-i", bridge.name, "-j", "ACCEPT",
         "-m", "comment", "--comment", "pyci"],
        ["-t", "filter", "FORWARD", "-o", bridge.name, "-j", "ACCEPT",
         "-m", "comment", "--comment", "pyci"],
    ]  # fmt: skip
    for rule in rules:
        table, chain, rest = rule[:2], rule[2], rule[3:]
        check = subprocess.run(["iptables", *table, "-C", chain, *rest], capture_output=True)
        if check.returncode != 0:
            subprocess.run(
                ["iptables", *table, "-A", chain, *rest], check=True, capture_output=True
            )


class AddressPool:
    """Leases addresses of `bridge.subnet` (the gateway excluded) as files under `directory`."""

    def __init__(self, bridge: Bridge, directory: Path):
        self.bridge = bridge
        self.directory = directory

    def lease(self, owner_pid: int | None = None) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        owner = str(owner_pid or os.getpid())
        hosts = list(self.bridge.subnet.hosts())[1:]
        for address in hosts:
            path = self.directory / str(address)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(owner)
            return f"{address}/{self.bridge.subnet.prefixlen}"
        raise OSError(f"no free address left in {self.bridge.subnet}")

    def release(self, address: str) -> None:
        (self.directory / address.split("/")[0]).unlink(missing_ok=True)

    def release_stale(self) -> list[str]:
        """Remove leases whose owner process is gone; returns the addresses freed."""
        freed = []
        if not self.directory.is_dir():
            return freed
        for path in self.directory.iterdir():
            try:
                pid = int(path.read_text() or "0")
            except (OSError, ValueError):
                pid = 0
            if not pid or not Path(f"/proc/{pid}").exists():
                path.unlink(missing_ok=True)
                freed.append(path.name)
        return freed


def host_link_name(container_id: str) -> str:
    """A host-side veth name with 'pyci' in it, within the kernel's 15 characters."""
    return ("pyci" + container_id.replace("pyci", "").replace("-", ""))[:15]


def remove_link(name: str) -> None:
    """Delete a host-side veth now instead of waiting for the kernel's asynchronous netns
    teardown; missing is fine."""
    if not os.path.exists(f"/sys/class/net/{name}"):
        return
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=name):
            with contextlib.suppress(Exception):  # raced with the kernel removing it
                ipr.link("del", index=index)
