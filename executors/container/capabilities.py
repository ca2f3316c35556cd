"""Linux capabilities by name, Docker's default set, and applying a set to this process.

Docker gives a container 14 capabilities; everything else (CAP_SYS_ADMIN, CAP_NET_ADMIN,
CAP_SYS_PTRACE, ...) is dropped from the bounding set so no exec can regain it. Root in the
container gets the set as effective and permitted; a non-root user keeps only the bounding set
(the kernel clears the others on setuid), as Docker has done since 23.0.
"""

from __future__ import annotations

import functools

from executors.linux import syscalls

_NAMES_IN_KERNEL_ORDER = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
)
_NAMES = _NAMES_IN_KERNEL_ORDER.split()
CAPABILITY_NUMBERS: dict[str, int] = {f"CAP_{name}": number for number, name in enumerate(_NAMES)}

DOCKER_DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def mask_of(names: tuple[str, ...] | list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[name]
    return mask


def names_of(mask: int) -> list[str]:
    return sorted(name for name, number in CAPABILITY_NUMBERS.items() if mask >> number & 1)


@functools.cache
def _last_cap() -> int:
    """The kernel's highest capability number: host-wide, so the launcher reads it once
    (`preload`) and every PID 1 forked from it knows it already."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITY_NUMBERS.values())


def preload() -> None:
    """Read in the launcher, before it forks, what every container's PID 1 needs."""
    _last_cap()


def drop_bounding(keep: tuple[str, ...]) -> None:
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    keep_mask = mask_of(keep)
    for number in range(_last_cap() + 1):
        if not keep_mask >> number & 1:
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)


def apply_process_sets(keep: tuple[str, ...]) -> None:
    """Make `keep` this process's effective and permitted set; inheritable and ambient empty."""
    mask = mask_of(keep)
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    syscalls.capset(effective=mask, permitted=mask, inheritable=0)
