"""Container networks: `none` (only a loopback), `host` (the host's stack) and `bridge`.

`bridge` is Docker's default shape: one `pyci0` bridge on the host with the gateway address, NAT
for traffic leaving the private range, and per container a veth pair whose inner end is `eth0`
with an address from the range. The host side (hostbridge.py: links through pyroute2, imported
on first use, and NAT through iptables) makes the pair with its inner end born inside the
container's network namespace, and the container's PID 1 then sets address and route with
classic ioctls (interfaces.py). The kernel destroys the pair
together with the namespace: a link cannot outlive its container, even after `kill -9`;
`finish()` at the end of a run waits for that and deletes any straggler.

Addresses are leased in one machine-wide file per bridge (`/run/pyci/pyci0.leases`, changed
under an flock), whatever a run's state dir, so concurrent pyci runs never share an address;
the lease of a process that has ended is reclaimed at the next lease.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import ipaddress
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from executors.container import hostbridge, names, netlink
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


LEASES_DIR = Path("/run/pyci")  # machine-wide, as the bridge is, whatever a run's state dir


@dataclass(frozen=True)
class _Lease:
    address: str
    pid: int
    started: str  # the process's start time (/proc/<pid>/stat): a reused pid is not the owner

    def alive(self) -> bool:
        return bool(self.started) and _start_time(self.pid) == self.started


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (after the command, which may hold spaces); "" if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2 :].split()[19]


class AddressPool:
    """Leases addresses of `bridge.subnet` (the gateway excluded) to processes.

    The bridge is one per machine, so are its leases: one file, `<bridge name>.leases` in
    `LEASES_DIR`, shared by every pyci run whatever its state dir (two runs with their own
    dirs once leased the same address). It is read and replaced under an flock of a lock file
    beside it; the new list is renamed into place, so a run killed mid-write leaves the old
    list, never half of one. A lease whose process has ended is dropped at the next change:
    a killed run's addresses come back without a recovery step."""

    def __init__(self, bridge: Bridge, leases_dir: Path = LEASES_DIR):
        self.bridge = bridge
        self.path = leases_dir / f"{bridge.name}.leases"

    def lease(self, owner_pid: int | None = None) -> str:
        pid = owner_pid or os.getpid()
        with self._leases() as (leases, _):
            taken = {lease.address for lease in leases}
            for address in itertools.islice(self.bridge.subnet.hosts(), 1, None):
                if str(address) not in taken:
                    leases.append(_Lease(str(address), pid, _start_time(pid)))
                    return f"{address}/{self.bridge.subnet.prefixlen}"
        raise OSError(f"no free address left in {self.bridge.subnet}")

    def release(self, address: str) -> None:
        plain = address.split("/")[0]
        with self._leases() as (leases, _):
            leases[:] = [lease for lease in leases if lease.address != plain]

    def release_stale(self) -> list[str]:
        """Drop leases whose process is gone; returns the addresses freed."""
        with self._leases() as (_, freed):
            return freed

    def holders(self) -> dict[str, int]:
        """Address -> pid of its holder, for every lease held now (stale ones dropped)."""
        with self._leases() as (leases, _):
            return {lease.address: lease.pid for lease in leases}

    @contextlib.contextmanager
    def _leases(self) -> Iterator[tuple[list[_Lease], list[str]]]:
        """Under the lock: the live leases (to change in place) and the stale ones dropped;
        the list is written back when the block ends without an error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            leases = self._read()
            live = [lease for lease in leases if lease.alive()]
            freed = [lease.address for lease in leases if not lease.alive()]
            before = list(live)
            yield live, freed
            if live != before or freed:
                self._write(live)
        finally:
            os.close(lock)  # releases the flock

    def _read(self) -> list[_Lease]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        leases = []
        for line in text.splitlines():
            address, pid, *started = line.split()
            if pid.isdigit():
                leases.append(_Lease(address, int(pid), started[0] if started else ""))
        return leases

    def _write(self, leases: list[_Lease]) -> None:
        temporary = self.path.with_suffix(".new")
        temporary.write_text("".join(f"{x.address} {x.pid} {x.started}\n" for x in leases))
        os.replace(temporary, self.path)


def default_pool() -> AddressPool:
    """The leases of the default bridge (without creating the bridge: recovery frees the
    leases of ended processes through it)."""
    return AddressPool(Bridge(BRIDGE_NAME, ipaddress.IPv4Network(DEFAULT_SUBNET)))


LINK_NAME_MAX = 15  # the kernel's IFNAMSIZ, less the terminating NUL


def host_link_name(container_id: str) -> str:
    """The host-side veth of a container: the id prefix (names.py), then a digest of the id
    to fill the kernel's 15 characters; ids are longer, and a digest stays unique where
    cutting the id (pid, then random part) would leave only a few random characters."""
    digest = hashlib.blake2s(container_id.encode()).hexdigest()
    return (names.id_prefix() + digest)[:LINK_NAME_MAX]
