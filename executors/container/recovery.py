"""Finding and removing what a pyci run killed with `kill -9` left behind.

Most state dies with its owner by construction: mounts live in the container's mount
namespace, veth pairs in its network namespace, and container processes follow the launcher
(every PID 1 carries PDEATHSIG, and the launcher exits when pyci's end of its socket
closes). What remains on disk is found by owner pid:
- scratch dirs `<state>/containers/<id>/` (an `owner` file holds the pid),
- cgroups named `pyci-<pid>-<hex>` below pyci's own cgroups,
- address leases `<state>/ipam/<address>` (holding the pid).
Anything whose owner is no longer alive is removed. `recover()` is cheap; the container
executor runs it once per process before its first job.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from executors.container import cgroups
from executors.container.runtime import DEFAULT_STATE_DIR, remove_tree

_OWNED_NAME = re.compile(r"^pyci-(\d+)-[0-9a-f]+$")


@dataclass
class RecoveryReport:
    scratch: list[Path] = field(default_factory=list)
    cgroups: list[Path] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.scratch or self.cgroups or self.leases)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_of(path: Path) -> int:
    try:
        return int((path / "owner").read_text().strip() or "0")
    except (OSError, ValueError):
        return 0


def recover(
    state_dir: Path = DEFAULT_STATE_DIR, driver: cgroups.Driver | None = None
) -> RecoveryReport:
    report = RecoveryReport()
    containers = state_dir / "containers"
    if containers.is_dir():
        for entry in containers.iterdir():
            if entry.is_dir() and not pid_alive(_owner_of(entry)):
                remove_tree(entry)
                report.scratch.append(entry)
    if driver is None:
        with contextlib.suppress(cgroups.CgroupError, OSError):
            driver = cgroups.open_driver()
    if driver is not None:
        for directory in driver.stale():
            match = _OWNED_NAME.match(directory.name)
            if match and not pid_alive(int(match.group(1))):
                with contextlib.suppress(cgroups.CgroupError):
                    cgroups.kill_all(directory)
                    cgroups.remove_dir(directory)
                    report.cgroups.append(directory)
    leases = state_dir / "ipam"
    if leases.is_dir():
        for lease in leases.iterdir():
            try:
                owner = int(lease.read_text().strip() or "0")
            except (OSError, ValueError):
                owner = 0
            if not pid_alive(owner):
                lease.unlink(missing_ok=True)
                report.leases.append(lease.name)
    return report


_done: set[Path] = set()
_lock = threading.Lock()


def recover_once(state_dir: Path = DEFAULT_STATE_DIR) -> RecoveryReport | None:
    """`recover` the first time this process asks for `state_dir`; None afterwards."""
    with _lock:
        if state_dir in _done:
            return None
        _done.add(state_dir)
    return recover(state_dir)
