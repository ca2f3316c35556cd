"""cgroup v1 driver: one directory per container in each controller's hierarchy.

Only the hierarchies a container's limits need are used: memory, cpu, pids; and `devices`
when it holds the device policy (devicepolicy.py), which it does only where the v2 tracker
below cannot hold it as a BPF program. Without a v2
tracker, pids is always used too: it is how v1 finds every process of a container (killing a
container means emptying its pids cgroup). In the hybrid layout a controller-less v2 `tracker`
cgroup is added to every container, which gives an atomic `cgroup.kill`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from executors.container import cgroupfs, devicepolicy
from executors.container.cgroupfs import CPU_PERIOD_US, CgroupError, Hierarchy, Limits
from executors.container.cgroups_v2 import V2Cgroup, V2Driver

USED_CONTROLLERS = ("memory", "cpu", "pids", "devices")


@dataclass
class V1Cgroup:
    directories: dict[str, Path]  # controller -> directory
    tracker: V2Cgroup | None = None
    _all: list[Path] = field(default_factory=list)

    @property
    def dirs(self) -> tuple[str, ...]:
        found = [str(d) for d in self.directories.values()]
        if self.tracker is not None:
            found.extend(self.tracker.dirs)
        return tuple(found)

    @property
    def v2_dir(self) -> str | None:
        return self.tracker.v2_dir if self.tracker is not None else None

    def processes(self) -> list[int]:
        pids = set()
        for directory in self.directories.values():
            pids.update(cgroupfs.read_procs(directory))
        if self.tracker is not None:
            pids.update(self.tracker.processes())
        return sorted(pids)

    def kill(self) -> None:
        if self.tracker is not None:
            self.tracker.kill()
        for directory in self.directories.values():
            cgroupfs.kill_all(directory)

    def oom_killed(self) -> bool:
        memory = self.directories.get("memory")
        if memory is None:
            return False
        return cgroupfs.event_count(memory / "memory.oom_control", "oom_kill") > 0

    def remove(self) -> None:
        self.kill()
        errors = []
        for directory in self.directories.values():
            try:
                cgroupfs.remove_dir(directory)
            except CgroupError as exc:
                errors.append(exc)
        if self.tracker is not None:
            self.tracker.remove()
        if errors:
            raise errors[0]


class V1Driver:
    def __init__(self, hierarchies: list[Hierarchy], tracker: V2Driver | None = None):
        self.parents: dict[str, Path] = {}
        for hierarchy in hierarchies:
            for controller in USED_CONTROLLERS:
                if controller in hierarchy.controllers:
                    self.parents.setdefault(controller, hierarchy.own_dir)
        self.tracker = tracker
        self.layout = "hybrid" if tracker is not None else "v1"
        # the device policy: on the v2 tracker if it takes it, else here
        self.policy_on_v1 = not (tracker is not None and tracker.device_policy)
        if self.policy_on_v1 and "devices" not in self.parents:
            raise CgroupError(
                "no device policy can be set: cgroup v1 has no devices controller here and no "
                "cgroup v2 hierarchy takes a BPF device program"
            )

    def create(self, name: str, limits: Limits) -> V1Cgroup:
        # Joining a cgroup costs an RCU grace period per hierarchy (milliseconds): join only
        # the hierarchies a limit needs, plus pids when there is no v2 tracker to find every
        # process of the container with.
        wanted = {
            "memory": limits.memory_bytes is not None,
            "cpu": limits.cpus is not None,
            "pids": limits.pids_max is not None or self.tracker is None,
            "devices": self.policy_on_v1,
        }
        for controller, needed in wanted.items():
            if needed and controller not in self.parents:
                raise CgroupError(f"cgroup v1 controller {controller} is not mounted")
        cgroup = V1Cgroup({})
        try:
            for controller, parent in self.parents.items():
                if not wanted[controller]:
                    continue
                directory = parent / name
                directory.mkdir()
                cgroup.directories[controller] = directory
            if limits.memory_bytes is not None:
                memory = cgroup.directories["memory"]
                cgroupfs.write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
                memsw = memory / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # no swap beyond the limit, as Docker's --memory-swap default
                    cgroupfs.write(memsw, str(limits.memory_bytes))
            if limits.cpus is not None:
                cpu = cgroup.directories["cpu"]
                cgroupfs.write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
                cgroupfs.write(cpu / "cpu.cfs_quota_us", str(quota))
            if limits.pids_max is not None:
                cgroupfs.write(cgroup.directories["pids"] / "pids.max", str(limits.pids_max))
            if self.policy_on_v1:
                for filename, rule in devicepolicy.v1_writes():
                    cgroupfs.write(cgroup.directories["devices"] / filename, rule)
            if self.tracker is not None:
                cgroup.tracker = self.tracker.create(name, Limits())
        except BaseException:
            cgroup.remove()
            raise
        return cgroup

    def stale(self) -> list[Path]:
        found = cgroupfs.stale_below(list(self.parents.values()))
        if self.tracker is not None:
            found.extend(self.tracker.stale())
        return found
