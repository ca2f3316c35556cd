"""The host side of the bridge network: the bridge with its gateway address and NAT, and a
veth pair per container. Link changes go through netlink.py (pyroute2); NAT through
`iptables`. Every failure is a `HostNetworkError` whose text is one line naming what failed.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import threading
from pathlib import Path

from executors.container import netlink


class HostNetworkError(OSError):
    """A link or NAT change failed; `str()` is the one-line message (no "[Errno n]")."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


_ensured: set[tuple[str, str]] = set()  # (bridge, subnet) set up by this process
_ensure_lock = threading.Lock()  # one job sets the bridge up, the others wait for it


def ensure_bridge(name: str, subnet: str) -> None:
    """The bridge `name` up with the first address of `subnet`, ip_forward on and the NAT and
    forward rules in place; checked once per process, again if the bridge went away."""
    with _ensure_lock:
        key = (name, subnet)
        if key in _ensured and os.path.exists(f"/sys/class/net/{name}"):
            return
        _set_up_bridge(name, ipaddress.IPv4Network(subnet))
        _ensured.add(key)


def _set_up_bridge(name: str, network: ipaddress.IPv4Network) -> None:
    if netlink.link_index(name) is None:
        try:
            netlink.add_bridge(name)
        except OSError as exc:  # another pyci run may have won the race
            if netlink.link_index(name) is None:
                raise HostNetworkError(exc.errno, f"cannot create bridge {name}: {exc.strerror}")
    index = netlink.link_index(name)
    if index is None:
        raise HostNetworkError(None, f"bridge {name} vanished while being set up")
    try:
        netlink.add_address(index, str(next(network.hosts())), network.prefixlen)
        netlink.set_up(index)
    except OSError as exc:
        raise HostNetworkError(exc.errno, f"cannot set up bridge {name}: {exc.strerror}") from exc
    try:
        _enable_nat(name, str(network))
    except OSError as exc:  # no iptables, a read-only /proc/sys
        detail = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        message = f"cannot set up NAT for bridge {name}: {detail}"
        raise HostNetworkError(exc.errno, message) from exc
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        message = f"{' '.join(exc.cmd)}: {lines[-1] if lines else exc}"
        raise HostNetworkError(None, message) from exc


def _enable_nat(bridge: str, subnet: str) -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    rules = [
        ["-t", "nat", "POSTROUTING", "-s", subnet, "!", "-o", bridge,
         "-j", "MASQUERADE", "-m", "comment", "--comment", "pyci"],
        ["-t", "filter", "FORWARD", "-i", bridge, "-j", "ACCEPT",
         "-m", "comment", "--comment", "pyci"],
        ["-t", "filter", "FORWARD", "-o", bridge, "-j", "ACCEPT",
         "-m", "comment", "--comment", "pyci"],
    ]  # fmt: skip
    # the checks run side by side (each is an iptables process reading the rule set)
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


def add_veth(host: str, bridge: str, mtu: int, peer: str, pid: int) -> None:
    """A veth pair up on `bridge` whose peer `peer` is born in the network namespace of
    process `pid`."""
    master = netlink.link_index(bridge)
    if master is None:
        raise HostNetworkError(None, f"bridge {bridge} does not exist")
    try:
        netlink.add_veth(host, master, mtu, peer, pid)
    except OSError as exc:
        what = f"veth {host} with its peer in the network namespace of pid {pid}"
        raise HostNetworkError(exc.errno, f"cannot create {what}: {exc.strerror}") from exc


def delete_link(name: str) -> bool:
    """Delete link `name`; False if there was none."""
    return netlink.delete_link(name)
