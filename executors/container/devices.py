"""/dev for a container: a small tmpfs with the standard nodes and symlinks, its own devpts
instance (so the container's terminals are its own), /dev/shm and /dev/mqueue.

The host's /dev is never shown: it would expose every disk and the host's terminals. What is
here is what Docker's /dev holds without a terminal (no /dev/console: Docker only makes one
for `-t`, as a pty). A job's root may still mknod other nodes here (CAP_MKNOD, as in Docker):
the device policy (devicepolicy.py) is what refuses to open them, and it allows every node
below.
"""

from __future__ import annotations

import os
import stat

from executors.linux import syscalls
from executors.linux.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_STRICTATIME

# name -> (major, minor); the set runc creates for Docker, all mode 0666
STANDARD_NODES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
STANDARD_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
    "core": "/proc/kcore",
}


def setup_dev(root: str, shm_size: int) -> None:
    """Mount and fill `<root>/dev`; `root` is the new root before pivot_root."""
    dev = f"{root}/dev"
    os.makedirs(dev, exist_ok=True)
    # no MS_NODEV here: the nodes below must work
    syscalls.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    old_umask = os.umask(0)
    try:
        for name, (major, minor) in STANDARD_NODES.items():
            os.mknod(f"{dev}/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        for name, target in STANDARD_LINKS.items():
            os.symlink(target, f"{dev}/{name}")
        os.mkdir(f"{dev}/pts", 0o755)
        os.mkdir(f"{dev}/shm", 0o1777)
        os.mkdir(f"{dev}/mqueue", 0o755)
    finally:
        os.umask(old_umask)
    syscalls.mount(
        "devpts",
        f"{dev}/pts",
        "devpts",
        MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    syscalls.mount(
        "shm",
        f"{dev}/shm",
        "tmpfs",
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        f"mode=1777,size={shm_size}",
    )
    syscalls.mount("mqueue", f"{dev}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
