"""What the cgroup drivers share: the types of the interface (`Limits`, `Cgroup`, `Driver`,
`Hierarchy`), its error, and the file operations every driver does (write a knob, list and
kill the processes of a directory, remove it). `cgroups.py` picks a driver; the drivers
(`cgroups_v1.py`, `cgroups_v2.py`) import only this module, so no import goes in a circle.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class CgroupError(OSError):
    """A limit cannot be applied here (controller missing) or a cgroup file refused a write."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None
    cpus: float | None = None
    pids_max: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.memory_bytes, self.cpus, self.pids_max))


CPU_PERIOD_US = 100_000


class Cgroup(Protocol):
    dirs: tuple[str, ...]  # the container writes its pid to cgroup.procs in each
    v2_dir: str | None  # the one of `dirs` on cgroup v2 (PID 1 can be cloned into it)

    def processes(self) -> list[int]: ...

    def kill(self) -> None: ...

    def oom_killed(self) -> bool: ...

    def remove(self) -> None: ...


class Driver(Protocol):
    layout: str

    def create(self, name: str, limits: Limits) -> Cgroup: ...

    def stale(self) -> list[Path]:
        """Directories of pyci cgroups below our own cgroup (for recovery)."""
        ...


@dataclass(frozen=True)
class Hierarchy:
    """A mounted hierarchy: `controllers` (empty for v2), `mountpoint`, and where this process
    sits in it as a directory."""

    version: int
    controllers: frozenset[str]
    mountpoint: Path
    own_dir: Path


def write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(exc.errno, f"write {value!r} to {path}: {exc.strerror}") from exc


def read_procs(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def kill_all(directory: Path, attempts: int = 50) -> None:
    """SIGKILL every process in `directory` until it is empty (forks may race the loop)."""
    for attempt in range(attempts):
        pids = read_procs(directory)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(min(0.02, 0.0005 * 2**attempt))  # dying processes leave within a ms


def remove_dir(directory: Path, timeout: float = 10.0) -> None:
    """rmdir a cgroup, waiting for exiting processes to leave it; children first. A killed
    process leaves within milliseconds, but on a machine loaded to its limits an exit can take
    seconds: the bound only matters then, and a cgroup left behind costs a recovery later."""
    if not directory.exists():
        return
    for child in sorted((p for p in directory.iterdir() if p.is_dir()), reverse=True):
        remove_dir(child, timeout)
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # EBUSY while a killed process is still exiting
            if time.monotonic() > deadline:
                raise CgroupError(exc.errno, f"rmdir {directory}: {exc.strerror}") from exc
            kill_all(directory, attempts=1)
            time.sleep(pause)
            pause = min(0.02, pause * 2)


def event_count(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except FileNotFoundError:
        pass
    return 0


def stale_below(own_dirs: list[Path]) -> list[Path]:
    return sorted({p for d in own_dirs if d.is_dir() for p in d.glob("pyci*") if p.is_dir()})
