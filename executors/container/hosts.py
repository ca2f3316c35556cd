"""The per-container files Docker generates: /etc/hosts, /etc/hostname, /etc/resolv.conf.

/etc/hosts maps the container's own name and every service's names (aliases and GitLab's
derived names) to their addresses, which is how a job reaches `postgres` or `db`.
resolv.conf is the host's, except that loopback name servers (systemd-resolved's 127.0.0.53,
dnsmasq on 127.0.0.1) are unreachable from another network namespace: then the upstream list
systemd-resolved keeps is used, as Docker does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_INVALID = re.compile(r"[^A-Za-z0-9-]+")


def hostname_for(job_name: str) -> str:
    """A valid host name derived from a job name (`build:linux amd64` -> `build-linux-amd64`)."""
    name = _INVALID.sub("-", job_name).strip("-").lower()[:63].strip("-")
    return name or "pyci"


def hosts_file(own_address: str | None, hostname: str, entries: Iterable[tuple[str, str]]) -> str:
    """`entries`: (address, name) pairs, written in order, names of one address together."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"{own_address or '127.0.1.1'}\t{hostname}",
    ]
    grouped: dict[str, list[str]] = {}
    for address, name in entries:
        names = grouped.setdefault(address, [])
        if name not in names:
            names.append(name)
    lines.extend(f"{address}\t{' '.join(names)}" for address, names in grouped.items())
    return "\n".join(lines) + "\n"


def _nameservers(text: str) -> list[str]:
    return [
        line.split()[1]
        for line in text.splitlines()
        if line.strip().startswith("nameserver") and len(line.split()) > 1
    ]


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def resolv_conf(
    host_file: Path = Path("/etc/resolv.conf"),
    upstream_file: Path = Path("/run/systemd/resolve/resolv.conf"),
    host_network: bool = False,
) -> str:
    try:
        text = host_file.read_text()
    except OSError:
        text = ""
    servers = _nameservers(text)
    if not host_network and servers and all(_is_loopback(s) for s in servers):
        try:
            text = upstream_file.read_text()
        except OSError:
            text = "\n".join(line for line in text.splitlines() if "nameserver" not in line)
        text = "\n".join(
            line
            for line in text.splitlines()
            if not (line.strip().startswith("nameserver") and _is_loopback(line.split()[-1]))
        )
    return text if text.endswith("\n") or not text else text + "\n"
