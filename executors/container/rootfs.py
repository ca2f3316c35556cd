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

from executors.container import devices, sysfs, targets
from executors.container.spec import ContainerSpec, Mount
from executors.linux import syscalls
from executors.linux.syscalls import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    MNT_DETACH,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_EMPTY_PATH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    OPEN_TREE_CLONE,
)

_AT_FDCWD = -100


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
            os.makedirs(path, mode=0o755, exist_ok=True)
    if spec.rootfs.lower_cwd:
        os.chdir(spec.rootfs.lower_cwd)  # relative lower dirs keep the options within a page
    # nodev: a device node the job makes (CAP_MKNOD) or an image ships opens nothing here.
    # No nosuid, as in Docker: the image's own setuid programs (su, ping, ...) must work.
    syscalls.mount("overlay", root, "overlay", MS_NODEV, overlay_options(spec))
    root_fd = targets.open_root(root)
    try:
        # every path below comes from the image's layout: resolved inside the root, never
        # on the host (see targets.py)
        for hidden in spec.rootfs.hidden_paths:
            _mount_new(root_fd, hidden, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        proc = targets.open_plain_dir(root_fd, "proc")
        try:
            kernel_fs = MS_NOSUID | MS_NODEV | MS_NOEXEC
            syscalls.mount("proc", targets.fd_path(proc), "proc", kernel_fs)
        finally:
            os.close(proc)
        os.close(targets.open_plain_dir(root_fd, "dev"))  # a real directory: setup_dev's path
        devices.setup_dev(root, spec.shm_size)
        sysfs.mount_sys(root_fd, spec.cgroup_dirs)
        kernel_devices = frozenset(os.stat(name, dir_fd=root_fd).st_dev for name in ("proc", "sys"))
        for mount in spec.mounts:
            _apply_mount(root_fd, mount, kernel_devices)
    finally:
        os.close(root_fd)
    _pivot(root)
    for path in spec.masked_paths:
        _mask(path)
    for path in spec.readonly_paths:
        _make_readonly(path)


def _mount_new(root_fd: int, path: str, fstype: str, flags: int, data: str | None) -> None:
    """A new file system (tmpfs) on an existing directory `path` of the root; none if absent."""
    target = targets.open_target(root_fd, path, "dir", create=False)
    if target is None:
        return
    try:
        syscalls.mount(fstype, targets.fd_path(target), fstype, flags, data)
    finally:
        os.close(target)


def _apply_mount(root_fd: int, mount: Mount, kernel_devices: frozenset[int]) -> None:
    kind: targets.Kind = "dir"
    if mount.kind == "bind":
        assert mount.source is not None
        kind = "dir" if os.path.isdir(mount.source) else "file"
    try:
        target = targets.open_target(root_fd, mount.target, kind)
        assert target is not None
        try:
            if os.fstat(target).st_dev in kernel_devices:
                # an image's link into /proc or /sys: a mount there could cover the kernel
                # interfaces the masked and read-only paths protect (runc refuses them too)
                raise targets.MountTargetError(
                    f"mount target {mount.target}: the image's links lead into /proc or /sys"
                )
            if mount.kind == "tmpfs":
                flags = MS_NOSUID | MS_NODEV
                syscalls.mount("tmpfs", targets.fd_path(target), "tmpfs", flags, mount.options)
            else:
                assert mount.source is not None
                _bind(mount.source, target, mount.readonly)
        finally:
            os.close(target)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot mount {mount.target}: {exc.strerror}") from exc


def _bind(source: str, target_fd: int, readonly: bool) -> None:
    """Bind `source` (a host path pyci chose) with everything mounted below it, nodev and
    nosuid throughout: what a host directory holds (a cache, artifacts, the sources) was put
    there by other jobs or users, so a device node or setuid bit there is never the image's.
    Attributes are set on a detached copy before it is attached (open_tree, mount_setattr,
    move_mount), so submounts get them too, which a remount of the top one does not do."""
    tree = syscalls.open_tree(_AT_FDCWD, source, OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC)
    try:
        attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | (MOUNT_ATTR_RDONLY if readonly else 0)
        syscalls.mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, attrs)
        move = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
        syscalls.move_mount(tree, "", target_fd, "", move)
    finally:
        os.close(tree)


def _pivot(root: str) -> None:
    # pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching "/" then
    # removes the old root without needing a directory for it inside the container (runc's trick)
    os.chdir(root)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", MNT_DETACH)
    os.chdir("/")


def _mask(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        syscalls.mount("tmpfs", path, "tmpfs", flags, "size=0")
    elif os.path.exists(path):
        syscalls.mount("/dev/null", path, None, MS_BIND)


def _make_readonly(path: str) -> None:
    if not os.path.exists(path):
        return
    syscalls.mount(path, path, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    syscalls.mount(None, path, None, flags)
