"""Can this machine run containers? A cheap check, without forking, for pyci's default.

pyci picks the container executor when it runs as root with CAP_SYS_ADMIN (so it may create
namespaces and mount), the kernel offers the namespaces it uses, overlayfs and a cgroup file
system; otherwise the shell executor. Root inside an unprivileged Docker container lacks
CAP_SYS_ADMIN, which is why the capability is checked, not only the uid.
"""

from __future__ import annotations

import os
from pathlib import Path

CAP_SYS_ADMIN = 21
NAMESPACES = ("mnt", "pid", "net", "uts", "ipc", "cgroup")


def container_unavailable_reason(proc: Path = Path("/proc")) -> str | None:
    """None when containers can run here, else why not (one short phrase)."""
    if os.geteuid() != 0:
        return "not running as root"
    status = (proc / "self" / "status").read_text()
    capabilities = [line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")]
    effective = capabilities[0] if capabilities else "0"
    if not int(effective, 16) & (1 << CAP_SYS_ADMIN):
        return "no CAP_SYS_ADMIN"
    missing = [ns for ns in NAMESPACES if not (proc / "self" / "ns" / ns).exists()]
    if missing:
        return f"the kernel has no {', '.join(missing)} namespaces"
    try:
        if int((proc / "sys" / "user" / "max_mnt_namespaces").read_text()) == 0:
            return "mount namespaces are disabled (user.max_mnt_namespaces = 0)"
    except (OSError, ValueError):
        pass  # older kernels have no such limit
    filesystems = (proc / "filesystems").read_text().split()
    module = Path("/lib/modules", os.uname().release, "kernel/fs/overlayfs")
    if "overlay" not in filesystems and not module.exists():  # a module loads on first mount
        return "the kernel has no overlayfs"
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        return "no cgroup file system at /sys/fs/cgroup"
    return None
