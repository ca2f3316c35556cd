"""A container's network interfaces, set up from inside its network namespace by PID 1.

Loopback up, and for the bridge network the address, state and default route of `eth0` (the
runtime has created it in the namespace by then). Classic ioctls on a datagram socket, so PID 1
needs no netlink library: the launcher forks per container, a fork costs in proportion to the
forking process's memory, and this module keeps the launcher small.
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import socket
import struct

from executors.container.spec import NetworkSpec

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


class _RtEntry(ctypes.Structure):
    """struct rtentry (net/route.h), for SIOCADDRT."""

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
    """In the container's network namespace: loopback up; for `bridge` also eth0's address,
    link state and default route. Nothing for `host`."""
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
