"""`ContainerSpec`: everything about one container, decided before anything is applied.

Plain, frozen data that survives a JSON round trip (it crosses a process boundary to the
launcher). `validate` catches a broken spec before any mount happens, in the spirit of runc's
config validator: the launcher then only applies, it never decides.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from executors.container.capabilities import CAPABILITY_NUMBERS, DOCKER_DEFAULT_CAPABILITIES

NetworkMode = Literal["none", "host", "bridge"]

# The launcher protocol's constants, here rather than in launcher.py so that pyci's process
# (runtime.py) does not import the launcher's PID 1 modules (rootfs, seccomp, users, ...).
MAX_MESSAGE = 1 << 20  # largest request or status message
NET_READY = b"net-ok"  # the runtime's answer to PID 1's {"netns": true}: the veth is in

# runc's defaults plus moby's later additions: kernel interfaces that leak host state or allow
# host-wide side effects. Masked = hidden (a /dev/null bind or an empty read-only tmpfs).
DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Mount:
    """One mount inside the new root, applied in list order. `target` is a path in the
    container. kind `bind` takes a host `source`; `tmpfs` takes `options` (e.g. `size=64m`)."""

    target: str
    kind: Literal["bind", "tmpfs"] = "bind"
    source: str | None = None
    readonly: bool = False
    options: str | None = None


@dataclass(frozen=True)
class Rootfs:
    """overlayfs: `lower_dirs` bottom first (as an image lists its layers), a throw-away
    `upper_dir` and `work_dir` on the same filesystem, mounted at `merged_dir`. `hidden_paths`
    get an empty tmpfs (used to hide /home, /root, ... when the host root is the lower layer)."""

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    merged_dir: str
    hidden_paths: tuple[str, ...] = ()
    lower_cwd: str | None = None  # lower dirs are relative to it (short links of long lists)
    # when set: a tmpfs is mounted here (in the container's own mount namespace) to hold
    # upper, work and merged dirs, so a one-off container touches no disk and leaves nothing
    tmpfs_base: str | None = None


@dataclass(frozen=True)
class NetworkSpec:
    """`bridge` needs `address` (CIDR, e.g. 10.213.0.5/16), `gateway` and `bridge`; the
    launcher creates the veth pair `host_link` <-> eth0 itself, so the pair dies with the
    container's network namespace."""

    mode: NetworkMode = "none"
    address: str | None = None
    gateway: str | None = None
    bridge: str | None = None
    host_link: str | None = None
    mtu: int = 1500


@dataclass(frozen=True)
class ContainerSpec:
    id: str
    command: tuple[str, ...]
    rootfs: Rootfs
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    user: str | None = None  # "name", "uid", "uid:gid", "name:group"; resolved in the rootfs
    hostname: str = "pyci"
    mounts: tuple[Mount, ...] = ()
    masked_paths: tuple[str, ...] = DEFAULT_MASKED_PATHS
    readonly_paths: tuple[str, ...] = DEFAULT_READONLY_PATHS
    network: NetworkSpec = field(default_factory=NetworkSpec)
    capabilities: tuple[str, ...] = DOCKER_DEFAULT_CAPABILITIES
    no_new_privs: bool = False
    seccomp: bool = False
    cgroup_dirs: tuple[str, ...] = ()  # directories whose cgroup.procs the container joins
    # the one of them on cgroup v2, if any: PID 1 is cloned straight into it (no migration)
    cgroup_v2_dir: str | None = None
    shm_size: int = 64 * 1024 * 1024

    def to_json(self) -> str:
        # what asdict() gives, without its deep copy of every value (~0.3 ms a spec, paid on
        # every container start): all fields are plain data or one of the three dataclasses
        data = dict(vars(self))
        data["rootfs"] = vars(self.rootfs)
        data["network"] = vars(self.network)
        data["mounts"] = [vars(mount) for mount in self.mounts]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        return spec_from_dict(json.loads(text))


def spec_from_dict(data: dict[str, Any]) -> ContainerSpec:
    data = dict(data)
    data["rootfs"] = Rootfs(**{k: _tuple(v) for k, v in data["rootfs"].items()})
    data["mounts"] = tuple(Mount(**m) for m in data.get("mounts", ()))
    data["network"] = NetworkSpec(**data.get("network", {}))
    data["env"] = tuple(tuple(pair) for pair in data.get("env", ()))
    for key in ("command", "masked_paths", "readonly_paths", "capabilities", "cgroup_dirs"):
        if key in data:
            data[key] = tuple(data[key])
    return ContainerSpec(**data)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class SpecError(ValueError):
    """The spec cannot be applied; the message lists every problem found."""


def validate(spec: ContainerSpec) -> ContainerSpec:
    """Return `spec` unchanged, or raise `SpecError` naming every problem."""
    problems: list[str] = []
    if not spec.command:
        problems.append("command is empty")
    if "pyci" not in spec.id:
        problems.append(f"id {spec.id!r} must contain 'pyci' (leftover checks rely on it)")
    if not _HOSTNAME.match(spec.hostname):
        problems.append(f"hostname {spec.hostname!r} is not a valid host name")
    if not spec.rootfs.lower_dirs:
        problems.append("rootfs has no lower layer")
    base = spec.rootfs.tmpfs_base
    if base is not None:
        for name in ("upper_dir", "work_dir", "merged_dir"):
            if not getattr(spec.rootfs, name).startswith(base.rstrip("/") + "/"):
                problems.append(f"rootfs {name} must be inside tmpfs_base {base!r}")
    for name, path in [
        ("upper_dir", spec.rootfs.upper_dir),
        ("work_dir", spec.rootfs.work_dir),
        ("merged_dir", spec.rootfs.merged_dir),
        *(("lower_dir", p) for p in spec.rootfs.lower_dirs if spec.rootfs.lower_cwd is None),
    ]:
        if not path.startswith("/"):
            problems.append(f"rootfs {name} {path!r} is not absolute")
    container_paths = [
        ("cwd", spec.cwd),
        *(("mount target", m.target) for m in spec.mounts),
        *(("masked path", p) for p in spec.masked_paths),
        *(("read-only path", p) for p in spec.readonly_paths),
        *(("hidden path", p) for p in spec.rootfs.hidden_paths),
    ]
    for what, path in container_paths:
        if not path.startswith("/") or ".." in path.split("/"):
            problems.append(f"{what} {path!r} must be absolute without '..'")
    for m in spec.mounts:
        if m.kind == "bind" and not (m.source and m.source.startswith("/")):
            problems.append(f"bind mount to {m.target!r} needs an absolute source")
        if m.kind not in ("bind", "tmpfs"):
            problems.append(f"mount to {m.target!r} has unknown kind {m.kind!r}")
    for cap in spec.capabilities:
        if cap not in CAPABILITY_NUMBERS:
            problems.append(f"unknown capability {cap!r}")
    net = spec.network
    if net.mode not in ("none", "host", "bridge"):
        problems.append(f"network mode {net.mode!r} is not none, host or bridge")
    if net.mode == "bridge":
        if not (net.address and "/" in net.address and net.gateway and net.bridge):
            problems.append("bridge network needs address (CIDR), gateway and bridge")
        if not (net.host_link and "pyci" in net.host_link and len(net.host_link) <= 15):
            problems.append(f"host link name {net.host_link!r} needs 'pyci' and <= 15 chars")
    for key, _ in spec.env:
        if not key or "=" in key or "\0" in key:
            problems.append(f"environment variable name {key!r} is invalid")
    if problems:
        raise SpecError("; ".join(problems))
    return spec
