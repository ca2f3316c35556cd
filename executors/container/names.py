"""The names pyci gives what it makes on the host, and the one prefix they all start with.

A container's id names its scratch dir (`<state>/containers/<id>`) and its cgroups; its
host-side veth (network.host_link_name) and the mount source of the build's overlay of the
sources start with the same prefix. The prefix is `pyci` unless `PYCI_ID_PREFIX` says
otherwise: the test suite gives each session a prefix of its own, so that its leftover checks
see only what that session made while other pyci runs share the machine. Any prefix starts
with `pyci`, so recovery and a look for leftovers (`grep pyci /proc/mounts`) find every run's
objects whatever its prefix.
"""

from __future__ import annotations

import os
import re
import secrets

from executors.base import ExecutorError

PREFIX_VARIABLE = "PYCI_ID_PREFIX"
DEFAULT_PREFIX = "pyci"
# at most 5 characters after `pyci`: a veth name (15 characters at most) keeps 6 for itself
_PREFIX_PATTERN = r"pyci[a-z0-9]{0,5}"
_PREFIX = re.compile(_PREFIX_PATTERN)
_CONTAINER_ID = re.compile(_PREFIX_PATTERN + r"-(\d+)-[0-9a-f]+")
_SOURCES_SUFFIX = "-sources"


def id_prefix() -> str:
    prefix = os.environ.get(PREFIX_VARIABLE, DEFAULT_PREFIX)
    if not _PREFIX.fullmatch(prefix):
        raise ExecutorError(
            f"{PREFIX_VARIABLE}={prefix!r}: must be 'pyci' followed by at most 5 lowercase "
            "letters or digits"
        )
    return prefix


def new_container_id() -> str:
    """`<prefix>-<our pid>-<random>`: recovery finds the owner of a leftover by its name."""
    return f"{id_prefix()}-{os.getpid()}-{secrets.token_hex(3)}"


def container_owner(name: str) -> int | None:
    """The pid in a container id (or cgroup name) made by `new_container_id`, any prefix."""
    match = _CONTAINER_ID.fullmatch(name)
    return int(match.group(1)) if match else None


def sources_mount() -> str:
    """The mount source of the build's overlay of the sources (`pyci-sources` by default)."""
    return id_prefix() + _SOURCES_SUFFIX


def is_sources_mount(source: str) -> bool:
    """Whether a mount source is that of a sources overlay, made with any prefix."""
    prefix, suffix, rest = source.partition(_SOURCES_SUFFIX)
    return bool(suffix) and not rest and _PREFIX.fullmatch(prefix) is not None
