"""The container's file system view, applied in a fresh mount namespace.

Order matters and follows runc's `rootfs_linux.go`: make every inherited mount private (nothing
may propagate back to the host), mount the overlay, then /proc, /dev, /sys and the spec's own
mounts inside it, pivot into it, detach the old root, and finally mask and write-protect the
kernel interfaces that leak or change host state.

Every mount lives only in the container's mount namespace, so the kernel drops them all when
the container's last process exits: no mount can outlive a container, even after `kill -9`.
"""

from __future__ import annotations

import os

from executors.container import devices, syscalls
from executors.container.spec import ContainerSpec, Mount
from executors.container.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def overlay_options(spec: ContainerSpec) -> str:
    # overlayfs wants the top layer first; images list their layers bottom first
    lower = ":".join(_escape(d) for d in reversed(spec.rootfs.lower_dirs))
    return f"lowerdir={lower},upperdir={spec.rootfs.upper_dir},workdir={spec.rootfs.work_dir}"


def setup_rootfs(spec: ContainerSpec) -> None:
    """Build the container's root and pivot into it. Runs in the container's PID 1."""
    syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = spec.rootfs.merged_dir
    if spec.rootfs.tmpfs_base:
        syscalls.mount("tmpfs", spec.rootfs.tmpfs_base, "tmpfs", MS_NOSUID, "mode=755")
        for path in (spec.rootfs.upper_dir, spec.rootfs.work_dir, root):
            os.makedirs(path, exist_ok=True)
    if spec.rootfs.lower_cwd:
        os.chdir(spec.rootfs.lower_cwd)  # relative lower dirs keep the options within a page
    syscalls.mount("overlay", root, "overlay", 0, overlay_options(spec))
    for hidden in spec.rootfs.hidden_paths:
        target = root + hidden
        if os.path.isdir(target):
            syscalls.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
    _mkdir(f"{root}/proc")
    syscalls.mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    devices.setup_dev(root, spec.shm_size)
    _mount_sys(root, own_netns=spec.network.mode != "host")
    for mount in spec.mounts:
        _apply_mount(root, mount)
    _pivot(root)
    for path in spec.masked_paths:
        _mask(path)
    for path in spec.readonly_paths:
        _make_readonly(path)


def _mount_sys(root: str, own_netns: bool) -> None:
    target = f"{root}/sys"
    _mkdir(target)
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if own_netns:
        syscalls.mount("sysfs", target, "sysfs", flags)
    else:
        # sysfs may only be mounted by the owner of the network namespace; share the host's
        syscalls.mount("/sys", target, None, MS_BIND | MS_REC)
        syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | flags)


def _apply_mount(root: str, mount: Mount) -> None:
    target = root + mount.target
    if mount.kind == "tmpfs":
        _mkdir(target)
        syscalls.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, mount.options)
        return
    assert mount.source is not None
    if os.path.isdir(mount.source):
        _mkdir(target)
    elif not os.path.lexists(target):
        _mkdir(os.path.dirname(target))
        with open(target, "a"):
            pass
    syscalls.mount(mount.source, target, None, MS_BIND | MS_REC)
    if mount.readonly:
        syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _pivot(root: str) -> None:
    # pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching "/" then
    # removes the old root without needing a directory for it inside the container (runc's trick)
    os.chdir(root)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", MNT_DETACH)
    os.chdir("/")


def _mask(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        syscalls.mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0")
    elif os.path.exists(path):
        syscalls.mount("/dev/null", path, None, MS_BIND)


def _make_readonly(path: str) -> None:
    if not os.path.exists(path):
        return
    syscalls.mount(path, path, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    syscalls.mount(None, path, None, flags)


def _mkdir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)
