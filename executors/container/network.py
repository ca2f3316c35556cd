"""Container networks: `none` (only a loopback), `host` (the host's stack) and `bridge`.

`bridge` is Docker's default shape, built with pyroute2 (netlink.py): one
`pyci0` bridge on the host with the gateway address, NAT for traffic leaving the private range,
and per container a veth pair whose inner end is `eth0` with an address from the range. The
runtime creates the pair (in pyci's process) with its inner end born inside the container's
network namespace; the container's PID 1 then sets address and route with classic ioctls. The
kernel destroys the pair together with the namespace: a link cannot outlive its container,
even after `kill -9`.

Addresses are leased as files under `<state>/ipam/` created with O_EXCL and holding the owner's
pid, so concurrent pyci runs never share an address and stale leases can be recovered.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import ipaddress
import os
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from executors.container import netlink
from executors.container.spec import NetworkSpec

BRIDGE_NAME = "pyci0"
DEFAULT_SUBNET = "10.213.0.0/24"

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_SIOCADDRT = 0x890B
_IFF_UP = 0x1
_RTF_UP = 0x1
_RTF_GATEWAY = 0x2


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("=H2s4s8x", socket.AF_INET, b"\0\0", socket.inet_aton(address))


def link_up(sock: socket.socket, name: str) -> None:
    flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, _ifreq(name)))[1]
    fcntl.ioctl(sock, _SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags | _IFF_UP)))


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        link_up(sock, "lo")


class _RtEntry(ctypes.Structure):
    _fields_ = [
        ("rt_pad1", ctypes.c_ulong),
        ("rt_dst", ctypes.c_ubyte * 16),
        ("rt_gateway", ctypes.c_ubyte * 16),
        ("rt_genmask", ctypes.c_ubyte * 16),
        ("rt_flags", ctypes.c_ushort),
        ("rt_pad2", ctypes.c_short),
        ("rt_pad3", ctypes.c_ulong),
        ("rt_pad4", ctypes.c_void_p),
        ("rt_metric", ctypes.c_short),
        ("rt_dev", ctypes.c_char_p),
        ("rt_mtu", ctypes.c_ulong),
        ("rt_window", ctypes.c_ulong),
        ("rt_irtt", ctypes.c_ushort),
    ]


def configure_inside(net: NetworkSpec) -> None:
    """In the container's new network namespace: loopback up, and for `bridge` the address,
    link state and default route of eth0 (the runtime has moved it in by then). Classic
    ioctls, so the launcher needs no netlink library and stays small (it forks per
    container, and a fork costs in proportion to its memory)."""
    if net.mode == "host":
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        link_up(sock, "lo")
        if net.mode != "bridge":
            return
        assert net.address and net.gateway
        address, prefix = net.address.split("/")
        mask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
        fcntl.ioctl(sock, _SIOCSIFADDR, _ifreq("eth0", _sockaddr_in(address)))
        fcntl.ioctl(sock, _SIOCSIFNETMASK, _ifreq("eth0", _sockaddr_in(mask)))
        link_up(sock, "eth0")
        route = _RtEntry()
        sockaddr = ctypes.c_ubyte * 16
        route.rt_dst = sockaddr.from_buffer_copy(_sockaddr_in("0.0.0.0"))
        route.rt_genmask = sockaddr.from_buffer_copy(_sockaddr_in("0.0.0.0"))
        route.rt_gateway = sockaddr.from_buffer_copy(_sockaddr_in(net.gateway))
        route.rt_flags = _RTF_UP | _RTF_GATEWAY
        fcntl.ioctl(sock, _SIOCADDRT, bytes(route))


def attach_veth(net: NetworkSpec, container_pid: int) -> None:
    """On the host (in pyci, no fork): a veth pair whose inner end is created directly as
    `eth0` in the network namespace of `container_pid`, outer end up on the bridge."""
    assert net.bridge and net.host_link
    bridge_index = netlink.link_index(net.bridge)
    if bridge_index is None:
        raise OSError(f"bridge {net.bridge} does not exist")
    netlink.add_veth(net.host_link, bridge_index, net.mtu, "eth0", container_pid)


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
    bridge = Bridge(name, ipaddress.IPv4Network(subnet))
    if netlink.link_index(name) is None:
        try:
            netlink.add_bridge(name)
        except OSError as exc:  # another pyci run may have won the race
            if netlink.link_index(name) is None:
                raise OSError(f"cannot create bridge {name}: {exc}") from exc
    index = netlink.link_index(name)
    if index is None:
        raise OSError(f"bridge {name} vanished while being set up")
    netlink.add_address(index, bridge.gateway, bridge.subnet.prefixlen)  # False: had it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        link_up(sock, name)
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
    # the checks run side by side (each is an iptables process reading the rule set): the
    # first job of every pyci run waits for them
    checks = [
        subprocess.Popen(
            ["iptables", "-w", *rule[:2], "-C", *rule[2:]],  # -w: legacy iptables' lock
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for rule in rules
    ]
    missing = [rule for rule, check in zip(rules, checks, strict=True) if check.wait() != 0]
    for rule in missing:
        subprocess.run(
            ["iptables", "-w", *rule[:2], "-A", *rule[2:]], check=True, capture_output=True
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
    with contextlib.suppress(OSError):  # raced with the kernel removing it
        netlink.delete_link(name)


class _LinkRemover:
    """Deletes host-side veths on a background thread. Deleting a link waits for the kernel
    to let go of the device (~30 ms, in the `send` of the request), which would otherwise
    delay every stage's result; the container is gone by then and the link's name is never
    reused. The thread ends whenever the queue is empty (no thread outlives the work, e.g. when
    the next fork server starts); `finish()` waits for pending deletions, at pyci's exit at
    the latest."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, name: str) -> None:
        if not os.path.exists(f"/sys/class/net/{name}"):
            return  # no bridge network, or the kernel was faster
        with self._lock:
            self._pending.append(name)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="pyci-link-remover", daemon=True
                )
                self._thread.start()

    def finish(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._thread = None
                        return
                    name = self._pending.pop(0)
                remove_link(name)
        except BaseException:
            with self._lock:  # a bug: let the next submit start a fresh thread
                self._thread = None
            raise


_link_remover = _LinkRemover()
remove_link_later = _link_remover.submit
finish_link_removals = _link_remover.finish
atexit.register(finish_link_removals)
