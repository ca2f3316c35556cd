"""GitLab CI services: what to run and under which names, and waiting for them to listen.

Naming follows GitLab: a service is reachable by each `alias` and by two names derived from
its image (`tutum/wordpress:latest` -> `tutum__wordpress` and `tutum-wordpress`). Its argv
follows Docker's merge of image and override, as gitlab-runner passes them: an `entrypoint`
override replaces the image's ENTRYPOINT *and* drops the image's CMD; `command` replaces CMD.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from executors.images.config import ImageConfig


def derived_names(image: str) -> tuple[str, ...]:
    """GitLab's host names for a service image: `/` -> `__` and `/` -> `-`, tag dropped."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name = name[:colon]
    return tuple(dict.fromkeys((name.replace("/", "__"), name.replace("/", "-"))))


def service_names(image: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    """Every name a service answers to: its aliases (each may list several, comma or space
    separated, as GitLab 16 allows), then the derived names."""
    names: list[str] = []
    for alias in aliases:
        names.extend(a for a in alias.replace(",", " ").split() if a)
    names.extend(derived_names(image))
    return tuple(dict.fromkeys(names))


def argv(
    config: ImageConfig,
    entrypoint: tuple[str, ...] | None,
    command: tuple[str, ...] | None,
) -> tuple[str, ...]:
    """The process to start, by Docker's rules; `entrypoint=("",)` means none."""
    if entrypoint is not None:
        chosen_entry = tuple(e for e in entrypoint if e)
        cmd = command or ()
    else:
        chosen_entry = config.entrypoint or ()
        cmd = command if command is not None else (config.cmd or ())
    return (*chosen_entry, *cmd)


def tcp_ports(exposed: tuple[str, ...]) -> list[int]:
    """`5432/tcp`, `80` -> [5432, 80]; udp ports cannot be waited for."""
    ports = []
    for entry in exposed:
        number, _, proto = entry.partition("/")
        if (proto or "tcp") == "tcp" and number.isdigit():
            ports.append(int(number))
    return ports


def wait_for_ports(
    address: str,
    ports: list[int],
    timeout: float,
    still_running: Callable[[], bool] = lambda: True,
) -> list[int]:
    """Wait until each port accepts a TCP connection; returns the ports that never did."""
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline and still_running():
        for port in list(pending):
            try:
                with socket.create_connection((address, port), timeout=0.5):
                    pending.remove(port)
            except OSError:
                pass
        if pending:
            time.sleep(0.1)
    return pending
