"""cgroup v2 driver: one directory per container in the unified hierarchy.

Limits need their controllers enabled in the parent's `cgroup.subtree_control`. The kernel
refuses that in a non-root cgroup that holds processes ("no internal processes"), which is
where pyci itself usually sits on a systemd machine; we then report the limit as unavailable
instead of moving pyci's own processes around. Without limits a v2 cgroup still tracks every
process of a container and kills them all at once through `cgroup.kill`.

The device policy (devicepolicy.py) is a BPF program attached to each container's directory
as it is made, before PID 1 is cloned into it, so it holds from PID 1's first instruction. A
v2 hierarchy that only tracks processes beside v1 controllers (the hybrid layout) leaves the
policy to the v1 `devices` controller when there is one (`device_policy=False`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from executors.container import cgroupfs, devicepolicy
from executors.container.cgroupfs import CPU_PERIOD_US, CgroupError, Hierarchy, Limits


@dataclass
class V2Cgroup:
    directory: Path

    @property
    def dirs(self) -> tuple[str, ...]:
        return (str(self.directory),)

    @property
    def v2_dir(self) -> str:
        return str(self.directory)

    def processes(self) -> list[int]:
        return cgroupfs.read_procs(self.directory)

    def kill(self) -> None:
        kill_file = self.directory / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(FileNotFoundError):
                cgroupfs.write(kill_file, "1")
        cgroupfs.kill_all(self.directory)

    def oom_killed(self) -> bool:
        return cgroupfs.event_count(self.directory / "memory.events", "oom_kill") > 0

    def remove(self) -> None:
        self.kill()
        cgroupfs.remove_dir(self.directory)


class V2Driver:
    layout = "v2"

    def __init__(self, hierarchy: Hierarchy, device_policy: bool = True):
        self.hierarchy = hierarchy
        self.parent = hierarchy.own_dir
        self.device_policy = device_policy

    def available_controllers(self) -> set[str]:
        try:
            return set((self.parent / "cgroup.controllers").read_text().split())
        except FileNotFoundError:
            return set()

    def _enable(self, needed: set[str]) -> None:
        if not needed:
            return
        enabled = set((self.parent / "cgroup.subtree_control").read_text().split())
        missing = needed - enabled
        if not missing:
            return
        unavailable = missing - self.available_controllers()
        if unavailable:
            raise CgroupError(
                f"cgroup v2 controller(s) {', '.join(sorted(unavailable))} not available in "
                f"{self.parent}"
            )
        cgroupfs.write(self.parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))

    def create(self, name: str, limits: Limits) -> V2Cgroup:
        needed = set()
        if limits.memory_bytes is not None:
            needed.add("memory")
        if limits.cpus is not None:
            needed.add("cpu")
        if limits.pids_max is not None:
            needed.add("pids")
        self._enable(needed)
        directory = self.parent / name
        directory.mkdir()
        cgroup = V2Cgroup(directory)
        try:
            if self.device_policy:
                try:
                    devicepolicy.attach(str(directory))
                except OSError as exc:
                    raise CgroupError(
                        exc.errno, f"cannot set the device policy on {directory}: {exc.strerror}"
                    ) from exc
            if limits.memory_bytes is not None:
                cgroupfs.write(directory / "memory.max", str(limits.memory_bytes))
                swap = directory / "memory.swap.max"
                if swap.exists():
                    cgroupfs.write(swap, "0")
            if limits.cpus is not None:
                quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
                cgroupfs.write(directory / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            if limits.pids_max is not None:
                cgroupfs.write(directory / "pids.max", str(limits.pids_max))
        except BaseException:
            cgroup.remove()
            raise
        return cgroup

    def stale(self) -> list[Path]:
        return cgroupfs.stale_below([self.parent])
