"""Container networks: `none` (only a loopback), `host` (the host's stack) and `bridge`.

`bridge` is Docker's default shape: one `pyci0` bridge on the host with the gateway address, NAT
for traffic leaving the private range, and per container a veth pair whose inner end is `eth0`
with an address from the range. The host side (hostbridge.py: links through pyroute2, imported
on first use, and NAT through iptables) makes the pair with its inner end born inside the
container's network namespace, and the container's PID 1 then sets address and route with
classic ioctls (interfaces.py). The kernel destroys the pair
together with the namespace: a link cannot outlive its container, even after `kill -9`;
`finish()` at the end of a run waits for that and deletes any straggler.

Addresses are leased as files under `<state>/ipam/` created with O_EXCL and holding the owner's
pid, so concurrent pyci runs never share an address and stale leases can be recovered.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from executors.container import hostbridge, netlink
from executors.container.spec import NetworkSpec

BRIDGE_NAME = "pyci0"
DEFAULT_SUBNET = "10.213.0.0/24"


@dataclass(frozen=True)
class Bridge:
    name: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))


def ensure_bridge(name: str = BRIDGE_NAME, subnet: str = DEFAULT_SUBNET) -> Bridge:
    """Create the bridge with its gateway address and NAT if missing (checked once per
    process, again only if the bridge went away)."""
    bridge = Bridge(name, ipaddress.IPv4Network(subnet))
    hostbridge.ensure_bridge(name, subnet)
    return bridge


def attach_veth(net: NetworkSpec, container_pid: int) -> None:
    """On the host: a veth pair whose inner end is created directly as `eth0` in the
    network namespace of `container_pid`, outer end up on the bridge. The kernel removes the
    pair with that namespace; `finish()` makes sure of it."""
    assert net.bridge and net.host_link
    _links.created(net.host_link)
    hostbridge.add_veth(net.host_link, net.bridge, net.mtu, "eth0", container_pid)


class _CreatedLinks:
    """The host-side veths this process made. The kernel deletes each with its container's
    network namespace, a little after the container ends (asynchronously, ~10-40 ms); deleting
    them ourselves instead cost ~7 ms per container in contention with the next container's
    veth (one netlink socket, one rtnl lock). So at the end of a run `finish` only waits for them to
    go, and deletes the few still there after a deadline (a namespace kept alive elsewhere)."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._lock = threading.Lock()
        self._prune_at = 64

    def created(self, name: str) -> None:
        with self._lock:
            self._names.add(name)
            if len(self._names) >= self._prune_at:  # a long-lived process: forget gone ones
                self._names = {n for n in self._names if _exists(n)}
                self._prune_at = max(64, 2 * len(self._names))

    def finish(self, timeout: float) -> list[str]:
        """Wait up to `timeout` s until every link made so far is gone; delete what is left
        Returns the names deleted so."""
        with self._lock:
            names = set(self._names)
        left = {n for n in names if _exists(n)}
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            time.sleep(0.005)
            left = {n for n in left if _exists(n)}
        deleted = []
        for name in sorted(left):
            with contextlib.suppress(OSError):  # raced with the kernel removing it
                if hostbridge.delete_link(name):
                    deleted.append(name)
        with self._lock:
            self._names -= names
        return deleted


def _exists(link: str) -> bool:
    return os.path.exists(f"/sys/class/net/{link}")


_links = _CreatedLinks()
LINKS_GONE_TIMEOUT = 1.0


def finish(timeout: float = LINKS_GONE_TIMEOUT) -> list[str]:
    """At the end of a run (after its containers ended): make sure no veth of ours is left,
    then close the netlink socket. Returns the links that had to be deleted explicitly."""
    try:
        return _links.finish(timeout)
    finally:
        netlink.close()


atexit.register(finish)


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
