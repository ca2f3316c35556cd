"""The few rtnetlink requests the bridge network needs, made through pyroute2.

pyci makes a few kinds of link change: a bridge, an address on it, its state up, and per
container a veth pair whose inner end is born in the container's network namespace (and, for
stragglers, the removal of its outer end). pyroute2 is the project's chosen netlink library.

pyroute2 is imported plainly, on first use: the first bridge container of a run pays for it
(~150-200 ms of CPU, once per process); `pyci list`, shell runs and `--network none`/`host`
never import it. The fork server and the containers' PID 1 never do either: they run in their
own `python -S` process (launcher.py), which sets addresses with ioctls (interfaces.py).

One IPRoute socket serves the whole process (opening one costs milliseconds); a lock makes the
functions safe to call from any thread, and a socket that failed is not reused.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_lock = threading.Lock()
_socket: Any = None


def _with_socket(action: Callable[[Any], _T]) -> _T:
    """Run `action(ipr)` on the shared IPRoute socket; pyroute2 errors become OSError."""
    global _socket
    from pyroute2 import IPRoute, NetlinkError  # on first use: see the module's docstring

    with _lock:
        if _socket is None:
            _socket = IPRoute()
        ipr = _socket
        try:
            return action(ipr)
        except NetlinkError as exc:
            raise OSError(exc.code, os.strerror(exc.code)) from exc
        except Exception:
            _socket = None  # a broken socket is not reused
            ipr.close()
            raise


def close() -> None:
    """Close the shared socket (the next request opens a new one)."""
    global _socket
    with _lock:
        if _socket is not None:
            _socket.close()
            _socket = None


def link_index(name: str) -> int | None:
    """The index of link `name` in this network namespace, None if there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def add_bridge(name: str) -> None:
    """Create bridge `name` (down); FileExistsError if a link of that name exists."""
    _with_socket(lambda ipr: ipr.link("add", ifname=name, kind="bridge"))


def add_address(index: int, address: str, prefixlen: int) -> bool:
    """Give link `index` the IPv4 `address`/`prefixlen`; False if it already had it."""
    try:
        _with_socket(lambda ipr: ipr.addr("add", index=index, address=address, prefixlen=prefixlen))
    except FileExistsError:
        return False
    return True


def set_up(index: int) -> None:
    """Bring link `index` up (nothing changes if it is up already)."""
    _with_socket(lambda ipr: ipr.link("set", index=index, state="up"))


def add_veth(host_name: str, master: int, mtu: int, peer_name: str, peer_netns_pid: int) -> None:
    """A veth pair: `host_name` up on bridge `master` here, its peer `peer_name` created
    directly in the network namespace of process `peer_netns_pid` (so it never appears on
    the host, and the kernel removes the pair with that namespace)."""
    peer = {"ifname": peer_name, "net_ns_pid": peer_netns_pid, "mtu": mtu}
    _with_socket(
        lambda ipr: ipr.link(
            "add", ifname=host_name, kind="veth", mtu=mtu, master=master, state="up", peer=peer
        )
    )


def delete_link(name: str) -> bool:
    """Delete link `name`; False if there was none (or it went meanwhile)."""
    index = link_index(name)
    if index is None:
        return False
    try:
        _with_socket(lambda ipr: ipr.link("del", index=index))
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return False
        raise
    return True
