"""One cgroup per container, nested under pyci's own cgroup, behind one interface.

Three layouts exist in the wild and each has a driver:
- v2 (unified): one hierarchy at /sys/fs/cgroup; what most users run today;
- v1: one hierarchy per controller (memory, cpu, pids, ...);
- hybrid: v1 controllers plus a controller-less v2 hierarchy (often /sys/fs/cgroup/unified)
  that is still good for tracking processes and killing them all at once (`cgroup.kill`).

`open_driver()` picks the driver from /proc/self/cgroup and /proc/self/mountinfo. A driver's
`create(name, limits)` returns a `Cgroup`: the directories a container joins, `kill()`,
`oom_killed()` and `remove()`. Every cgroup name contains "pyci" (leftover checks look for it).
A driver also puts the device policy (devicepolicy.py) on every cgroup it creates.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from executors.container.cgroupfs import (
    CgroupError,
    Driver,
    Hierarchy,
)


def discover(proc: Path = Path("/proc/self")) -> list[Hierarchy]:
    """The hierarchies this process belongs to that are mounted here."""
    memberships: dict[str, str] = {}  # "0" for v2, else the comma-separated controller list
    for line in (proc / "cgroup").read_text().splitlines():
        hierarchy_id, controllers, path = line.split(":", 2)
        memberships["" if hierarchy_id == "0" else controllers] = path
    found = []
    for line in (proc / "mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        root, mountpoint = fields[3], Path(fields[4])
        if fstype == "cgroup2" and "" in memberships:
            key, version, controllers = "", 2, frozenset()
        elif fstype == "cgroup":
            names = [
                o for o in options if (o not in ("rw", "ro") and "=" not in o) or o[:5] == "name="
            ]
            key = next((k for k in memberships if k and set(k.split(",")) == set(names)), None)
            if key is None:
                continue
            version, controllers = 1, frozenset(n for n in names if not n.startswith("name="))
        else:
            continue
        path = memberships[key]
        relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
        own = (mountpoint / relative).resolve() if relative != "." else mountpoint
        found.append(Hierarchy(version, controllers, mountpoint, own))
    return found


def detect_layout(hierarchies: list[Hierarchy]) -> str:
    v1 = [h for h in hierarchies if h.version == 1 and h.controllers]
    v2 = [h for h in hierarchies if h.version == 2]
    if v1 and v2:
        return "hybrid"
    if v1:
        return "v1"
    if v2:
        return "v2"
    raise CgroupError("no cgroup hierarchy is mounted")


def open_driver(layout: str | None = None, hierarchies: list[Hierarchy] | None = None) -> Driver:
    """The driver for this machine's layout (or the one named: "v1", "v2", "hybrid"), over
    `hierarchies` (default: the ones this process belongs to).

    The driver also decides where the device policy goes: a BPF program on the container's
    cgroup v2 directory where there is one and this process may load the program, else the
    v1 `devices` controller; with neither, it raises CgroupError rather than run containers
    without a device policy."""
    from executors.container import cgroups_v1, cgroups_v2, devicepolicy

    if hierarchies is None:
        hierarchies = discover()
    layout = layout or detect_layout(hierarchies)
    v2 = next((h for h in hierarchies if h.version == 2), None)
    if layout == "v2":
        if v2 is None:
            raise CgroupError("no cgroup v2 hierarchy is mounted")
        return cgroups_v2.V2Driver(v2)
    v1 = [h for h in hierarchies if h.version == 1 and h.controllers]
    if layout == "v1":
        return cgroups_v1.V1Driver(v1)
    if layout == "hybrid":
        if v2 is None:
            raise CgroupError("the hybrid layout needs a cgroup v2 hierarchy")
        # The kernel runs a v2 device program even beside a v1 devices controller (an open
        # must pass both), and it costs nothing: PID 1 is born in its v2 cgroup, while joining
        # a v1 devices cgroup waits for an RCU grace period (+8 ms a container here). So the
        # v1 controller holds the policy only where the program cannot be loaded.
        devices_on_v1 = any("devices" in h.controllers for h in v1)
        bpf = not devices_on_v1 or devicepolicy.program_loads()
        return cgroups_v1.V1Driver(v1, tracker=cgroups_v2.V2Driver(v2, device_policy=bpf))
    raise CgroupError(f"unknown cgroup layout {layout!r}")


@functools.cache
def shared_driver(layout: str | None = None) -> Driver:
    """`open_driver(layout)`, made once per process: the layout and pyci's own cgroups do not
    change while it runs, and discovering them reads and parses two /proc files (~1 ms)."""
    return open_driver(layout)
