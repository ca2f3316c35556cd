"""The few rtnetlink requests the bridge network needs, spoken directly over a netlink socket.

pyci makes three kinds of link change: a bridge, an address on it, and per container a veth
pair whose inner end is born in the container's network namespace (and the removal of its
outer end). A general netlink library costs ~160 ms of CPU to import (pyroute2 loads its IPDB,
NDB and conntrack at package import), more than all the containers of a small pipeline take to
start; these requests are a few dozen bytes each, encoded here with `struct`.

Each call opens its own socket (microseconds), so any thread may call any function.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

_NETLINK_ROUTE = 0
_RTM_NEWLINK = 16
_RTM_DELLINK = 17
_RTM_NEWADDR = 20
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_EXCL = 0x200
_NLM_F_CREATE = 0x400
_IFF_UP = 0x1
# link attributes
_IFLA_IFNAME = 3
_IFLA_MTU = 4
_IFLA_MASTER = 10
_IFLA_LINKINFO = 18
_IFLA_NET_NS_PID = 19
_IFLA_INFO_KIND = 1
_IFLA_INFO_DATA = 2
_VETH_INFO_PEER = 1
# address attributes
_IFA_ADDRESS = 1
_IFA_LOCAL = 2

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # ifaddrmsg: family, prefix length, flags, scope, index


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _ifinfo(index: int = 0, up: bool = False) -> bytes:
    flags = _IFF_UP if up else 0
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, flags)


def _request(kind: int, flags: int, body: bytes) -> None:
    """Send one request and wait for the kernel's acknowledgement; OSError if it refused."""
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_ROUTE
    ) as sock:
        sock.bind((0, 0))
        header = _HEADER.pack(_HEADER.size + len(body), kind, _NLM_F_REQUEST | _NLM_F_ACK | flags,
                              1, 0)  # fmt: skip
        sock.send(header + body)
        while True:
            reply = sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(reply):
                length, reply_kind, _flags, sequence, _port = _HEADER.unpack_from(reply, offset)
                if reply_kind == _NLMSG_ERROR and sequence == 1:
                    (code,) = struct.unpack_from("=i", reply, offset + _HEADER.size)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(length + (-length % 4), _HEADER.size)


def link_index(name: str) -> int | None:
    """The index of link `name` in this network namespace, None if there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def add_bridge(name: str) -> None:
    """Create bridge `name` (down); FileExistsError if a link of that name exists."""
    info = _attr(_IFLA_LINKINFO, _attr(_IFLA_INFO_KIND, _name("bridge")))
    body = _ifinfo() + _attr(_IFLA_IFNAME, _name(name)) + info
    _request(_RTM_NEWLINK, _NLM_F_CREATE | _NLM_F_EXCL, body)


def add_address(index: int, address: str, prefixlen: int) -> bool:
    """Give link `index` the IPv4 `address`/`prefixlen`; False if it already had it."""
    packed = socket.inet_aton(address)
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index)
    body += _attr(_IFA_LOCAL, packed) + _attr(_IFA_ADDRESS, packed)
    try:
        _request(_RTM_NEWADDR, _NLM_F_CREATE | _NLM_F_EXCL, body)
    except FileExistsError:
        return False
    return True


def add_veth(host_name: str, master: int, mtu: int, peer_name: str, peer_netns_pid: int) -> None:
    """A veth pair: `host_name` up on bridge `master` here, its peer `peer_name` created
    directly in the network namespace of process `peer_netns_pid` (so it never appears on
    the host, and the kernel removes the pair with that namespace)."""
    peer = _ifinfo() + _attr(_IFLA_IFNAME, _name(peer_name)) + _attr(_IFLA_MTU, _u32(mtu))
    peer += _attr(_IFLA_NET_NS_PID, _u32(peer_netns_pid))
    info = _attr(_IFLA_INFO_KIND, _name("veth"))
    info += _attr(_IFLA_INFO_DATA, _attr(_VETH_INFO_PEER, peer))
    body = _ifinfo(up=True) + _attr(_IFLA_IFNAME, _name(host_name))
    body += _attr(_IFLA_MTU, _u32(mtu)) + _attr(_IFLA_MASTER, _u32(master))
    body += _attr(_IFLA_LINKINFO, info)
    _request(_RTM_NEWLINK, _NLM_F_CREATE | _NLM_F_EXCL, body)


def delete_link(name: str) -> bool:
    """Delete link `name`; False if there was none (or it went meanwhile)."""
    index = link_index(name)
    if index is None:
        return False
    try:
        _request(_RTM_DELLINK, 0, _ifinfo(index))
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return False
        raise
    return True
