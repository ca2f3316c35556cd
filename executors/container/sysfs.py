"""/sys for a container: read-only all the way down, with its own read-only view of cgroups.

A fresh sysfs, in every network mode. pyci used to bind the host's /sys recursively for the
`host` network, believing a sysfs could only be mounted from a network namespace of one's
own; that holds only inside a user namespace (rootless runc falls back to such a bind). The
bind brought every mount below the host's /sys (its cgroup hierarchies, securityfs, debugfs,
tracefs, bpffs, ...), writable, since only its top was remounted read-only: a job raised its
own `pids.max` and moved itself into the root memory cgroup. A fresh sysfs has no submounts,
shows the network namespace it was mounted from (the host's devices under `host`), and the
whole tree is then made read-only, nosuid, nodev and noexec with one recursive
`mount_setattr`.

On top of it, as Docker does, /sys/fs/cgroup shows the cgroup file systems mounted afresh from
inside the container's cgroup namespace (PID 1 unshared one after joining its cgroups), so each
hierarchy's root is the container's own cgroup, and read-only: a job can read its limits and
usage, never change them or reach another cgroup. On cgroup v2 that is one `cgroup2` mount; on
v1 and hybrid hosts a small tmpfs holds one directory per hierarchy, named as on the host, with
a mount in those where the container has a cgroup of its own.
"""

from __future__ import annotations

import os

from executors.container import targets
from executors.linux import syscalls
from executors.linux.syscalls import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
)

CGROUP_ROOT = "/sys/fs/cgroup"
_LOCKED_DOWN = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
_KERNEL_FS = MS_NOSUID | MS_NODEV | MS_NOEXEC


def mount_sys(root_fd: int, own_cgroups: tuple[str, ...]) -> None:
    """Mount /sys (and the view of `own_cgroups`, host paths of the container's cgroups, in
    it) inside the root at `root_fd`, all read-only."""
    sys_fd = targets.open_plain_dir(root_fd, "sys")
    try:
        syscalls.mount("sysfs", targets.fd_path(sys_fd), "sysfs", _KERNEL_FS | MS_RDONLY)
    finally:
        os.close(sys_fd)
    mount_cgroup_view(root_fd, own_cgroups)
    top = targets.open_plain_dir(root_fd, "sys")  # now the mount made above
    try:
        syscalls.mount_setattr(top, "", AT_EMPTY_PATH | AT_RECURSIVE, _LOCKED_DOWN)
    finally:
        os.close(top)


def cgroup_filesystems(mountinfo: str, known_controllers: set[str]) -> list[tuple[str, str, str]]:
    """(name below /sys/fs/cgroup, "" for /sys/fs/cgroup itself; fstype; mount data) of each
    cgroup file system the host mounts there, from a mountinfo text. The data keeps only
    what selects a v1 hierarchy (controllers, `name=`): options such as `release_agent` may
    not be given from inside a cgroup namespace, and the hierarchy has them already."""
    found: dict[str, tuple[str, str, str]] = {}  # by name: the last mount there is seen
    for line in mountinfo.splitlines():
        if " - cgroup" not in line:
            continue  # most lines, and a host may have hundreds: skip them unparsed
        fields = line.split()
        separator = fields.index("-")
        mountpoint, fstype = fields[4], fields[separator + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        if mountpoint == CGROUP_ROOT:
            name = ""
        elif os.path.dirname(mountpoint) == CGROUP_ROOT:
            name = os.path.basename(mountpoint)
        else:
            continue
        options = fields[separator + 3].split(",")
        selecting = [o for o in options if o in known_controllers or o.startswith("name=")]
        found[name] = (name, fstype, ",".join(selecting) if fstype == "cgroup" else "")
    return list(found.values())


def _known_controllers() -> set[str]:
    with open("/proc/cgroups") as f:
        return {line.split()[0] for line in f if line.strip() and not line.startswith("#")}


def mount_cgroup_view(root_fd: int, own_dirs: tuple[str, ...]) -> None:
    """Mount, read-only, the hierarchies in which the container has a cgroup of its own
    (`own_dirs`: the host paths of its cgroups); the others get an empty directory, as
    Docker shows each container only its own cgroups."""
    with open("/proc/self/mountinfo") as f:
        filesystems = cgroup_filesystems(f.read(), _known_controllers())
    if not filesystems:
        return
    target = targets.open_target(root_fd, CGROUP_ROOT, "dir", create=False)
    if target is None:
        return
    try:
        if any(name == "" for name, _, _ in filesystems):  # cgroup v2 alone, at its root
            if _is_own(CGROUP_ROOT, own_dirs):
                flags = _KERNEL_FS | MS_RDONLY
                syscalls.mount("cgroup2", targets.fd_path(target), "cgroup2", flags)
            return
        syscalls.mount("tmpfs", targets.fd_path(target), "tmpfs", _KERNEL_FS, "mode=755,size=64k")
    finally:
        os.close(target)
    holder = targets.open_target(root_fd, CGROUP_ROOT, "dir", create=False)
    assert holder is not None
    try:
        for name, fstype, data in filesystems:
            os.mkdir(name, 0o555, dir_fd=holder)
            if not _is_own(f"{CGROUP_ROOT}/{name}", own_dirs):
                continue
            sub = targets.open_target(root_fd, f"{CGROUP_ROOT}/{name}", "dir", create=False)
            assert sub is not None
            try:
                flags = _KERNEL_FS | MS_RDONLY
                syscalls.mount(fstype, targets.fd_path(sub), fstype, flags, data or None)
            finally:
                os.close(sub)
        _copy_host_links(holder)
    finally:
        os.close(holder)
    # the holder becomes read-only with the rest of /sys (mount_sys's recursive setattr)


def _is_own(mountpoint: str, own_dirs: tuple[str, ...]) -> bool:
    # in a hierarchy where PID 1 did not join a cgroup of its own, the namespace's root would
    # be the fork server's cgroup, and the view the tree of everything else in it
    return any(directory.startswith(mountpoint + "/") for directory in own_dirs)


def _copy_host_links(holder_fd: int) -> None:
    """The host's aliases of combined hierarchies (`cpu` -> `cpu,cpuacct`)."""
    with os.scandir(CGROUP_ROOT) as entries:
        for entry in entries:
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), entry.name, dir_fd=holder_fd)
