"""Finding and removing what a pyci run killed with `kill -9` left behind.

Most state dies with its owner by construction: mounts live in the container's mount
namespace, veth pairs in its network namespace, and container processes follow the launcher
(every PID 1 carries PDEATHSIG, and the launcher exits when pyci's end of its socket
closes). What remains on disk is found by owner pid:
- scratch dirs `<state>/containers/<id>/` (an `owner` file holds the pid),
- cgroups named `<prefix>-<pid>-<hex>` (names.py; `pyci-…` by default) below pyci's own cgroups,
- address leases of the bridge (network.AddressPool: machine-wide, holding the pid),
- the build's copy-on-write overlay of the sources (mount source `<prefix>-sources`, made by
  runner/build/snapshot.py at `<job dir>/<project>`): it lives in the host's mount namespace
  and outlives pyci. Its owner is whoever holds the flock on the job dir (workspace.py); a
  dead build holds none, so the overlay is unmounted and its job dir removed.
Anything whose owner is no longer alive is removed. `recover()` is cheap; the container
executor runs it once per process before its first job, and `pyci run` starts it early, on a
thread while the pipeline loads.

A killed container's processes are gone when its pid namespace's init is, but a cgroup may
refuse rmdir (EBUSY) for a while after: exiting tasks leave it only at the end of their exit
(a big address space takes long to free under load). Removal waits for that, bounded by
`CGROUP_TIMEOUT`; what still fails is reported in `RecoveryReport.failed`, never hidden.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from executors.container import cgroupfs, cgroups, names, network
from executors.container.runtime import DEFAULT_STATE_DIR, remove_tree
from executors.linux import syscalls
from executors.statedirs import private_dir

CGROUP_TIMEOUT = 10.0  # per cgroup, only ever waited for when it is really still busy


@dataclass
class RecoveryReport:
    scratch: list[Path] = field(default_factory=list)
    cgroups: list[Path] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)  # stale source overlays unmounted
    failed: list[str] = field(default_factory=list)  # what could not be removed, and why

    @property
    def empty(self) -> bool:
        return not (self.scratch or self.cgroups or self.leases or self.mounts or self.failed)


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
    state_dir: Path = DEFAULT_STATE_DIR,
    driver: cgroupfs.Driver | None = None,
    cgroup_timeout: float = CGROUP_TIMEOUT,
) -> RecoveryReport:
    report = RecoveryReport()
    if state_dir.exists():
        # a state dir an older pyci left open (0755) is closed before anything else; one that
        # is not ours is refused, not cleaned: its owner could point us anywhere
        private_dir(state_dir)
    containers = state_dir / "containers"
    if containers.is_dir():
        for entry in containers.iterdir():
            if entry.is_dir() and not pid_alive(_owner_of(entry)):
                remove_tree(entry)
                report.scratch.append(entry)
    if driver is None:
        with contextlib.suppress(cgroupfs.CgroupError, OSError):
            driver = cgroups.open_driver()
    if driver is not None:
        _recover_cgroups(driver, report, cgroup_timeout)
    try:
        report.leases.extend(network.default_pool().release_stale())
    except OSError as exc:
        report.failed.append(f"address leases: {exc}")
    recover_source_overlays(report)
    return report


def _recover_cgroups(driver: cgroupfs.Driver, report: RecoveryReport, timeout: float) -> None:
    for directory in driver.stale():
        owner = names.container_owner(directory.name)
        if owner is None or pid_alive(owner):
            continue
        try:
            cgroupfs.kill_all(directory)
            cgroupfs.remove_dir(directory, timeout)
        except cgroupfs.CgroupError as exc:
            report.failed.append(f"cgroup {directory}: {exc}")
        else:
            report.cgroups.append(directory)


def source_overlays(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points of the build's source overlays in this mount namespace."""
    found = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split(" ")
        if "-" not in fields:
            continue
        after = fields[fields.index("-") + 1 :]
        if len(after) >= 2 and after[0] == "overlay" and names.is_sources_mount(after[1]):
            found.append(Path(_unescape(fields[4])))
    return found


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def recover_source_overlays(report: RecoveryReport | None = None) -> RecoveryReport:
    """Unmount the source overlays of dead builds and remove their job dirs. Needs no
    container: any executor's run could call it (the shell executor's builds mount them too)."""
    report = report if report is not None else RecoveryReport()
    for point in source_overlays():
        job_dir = point.parent
        try:
            fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1  # the job dir is gone: nobody can hold the overlay any more
        except OSError:
            continue
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live build holds its job dir
            try:
                # detached: a process of the dead build still inside must not keep it
                syscalls.umount2(str(point), syscalls.MNT_DETACH)
            except OSError as exc:
                report.failed.append(f"mount {point}: {exc.strerror}")
                continue
            report.mounts.append(point)
            if fd >= 0:
                shutil.rmtree(job_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    job_dir.parent.rmdir()  # the project's builds dir, when nothing else is left
        finally:
            if fd >= 0:
                os.close(fd)
    return report


class _Once:
    """One recovery of a state dir in this process: its report goes to the first job that
    asks (to be shown in its log), every caller waits until it is over."""

    def __init__(self) -> None:
        self.over = threading.Event()
        self.report: RecoveryReport | None = None
        self.claimed = False

    def run(self, state_dir: Path) -> None:
        try:
            self.report = recover(state_dir)
        except Exception as exc:  # shown to the first job, which carries on as before
            self.report = RecoveryReport(failed=[f"recovery of {state_dir}: {exc}"])
        finally:
            self.over.set()


_runs: dict[Path, _Once] = {}
_lock = threading.Lock()


def _once(state_dir: Path) -> tuple[_Once, bool]:
    with _lock:
        entry = _runs.get(state_dir)
        if entry is not None:
            return entry, False
        entry = _runs[state_dir] = _Once()
        return entry, True


def recover_in_background(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Start this process's recovery of `state_dir` on a thread (`pyci run` does so while the
    pipeline loads); the first job's `recover_once` collects its report."""
    entry, first = _once(state_dir)
    if first:
        threading.Thread(target=entry.run, args=(state_dir,), name="pyci-recovery").start()


def recover_once(state_dir: Path = DEFAULT_STATE_DIR) -> RecoveryReport | None:
    """The report of this process's one recovery of `state_dir` (run now unless it was started
    already; waited for if it is running) for the first caller; None for later ones."""
    entry, first = _once(state_dir)
    if first:
        entry.run(state_dir)
    entry.over.wait()
    with _lock:
        if entry.claimed:
            return None
        entry.claimed = True
        return entry.report
