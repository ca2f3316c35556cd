"""The one place where pyci talks to the kernel through ctypes.

Every wrapper raises `OSError` whose message names the call and its arguments, so a failed mount
in a log reads `mount(source='overlay', target='/run/pyci/...', fstype='overlay', ...): Invalid
argument` instead of a bare errno. Only what the container runtime needs is here; anything Python's
`os` module already offers (setns, mknod, setgroups, pidfd_open, ...) is used from there.
"""

from __future__ import annotations

import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)

# Namespaces (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl(2) options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# Calls added since Linux 5.1 share one number on every architecture (the generic table).
_NEW_MOUNT_API = {"open_tree": 428, "move_mount": 429, "openat2": 437, "mount_setattr": 442}
_SYSCALL_NUMBERS = {
    "x86_64": {
        "pivot_root": 155,
        "capget": 125,
        "capset": 126,
        "clone": 56,
        "bpf": 321,
        **_NEW_MOUNT_API,
    },
    "aarch64": {
        "pivot_root": 41,
        "capget": 90,
        "capset": 91,
        "clone": 220,
        "bpf": 280,
        **_NEW_MOUNT_API,
    },
}
CLONE_PIDFD = 0x00001000
_SIGCHLD = 17


def _number(call: str) -> int:
    """The number of `call` on this machine. Looked up at each use, not at import: a machine
    we have no table for must fail with a clear error when a container is started (not make
    whatever call has that number there), and not break commands that never start one."""
    machine = os.uname().machine
    numbers = _SYSCALL_NUMBERS.get(machine)
    if numbers is None:
        known = " and ".join(sorted(_SYSCALL_NUMBERS))
        raise OSError(
            errno.ENOSYS,
            f"{call}: pyci knows the system call numbers of {known} only, not of {machine}",
        )
    return numbers[call]


def _fail(call: str, **args: object) -> OSError:
    err = ctypes.get_errno()
    shown = ", ".join(f"{key}={value!r}" for key, value in args.items())
    return OSError(err, f"{call}({shown}): {os.strerror(err)}")


def _c(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    result = _libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data))
    if result != 0:
        raise _fail("mount", source=source, target=target, fstype=fstype, flags=flags, data=data)


def umount2(target: str, flags: int = 0) -> None:
    if _libc.umount2(_c(target), ctypes.c_int(flags)) != 0:
        raise _fail("umount2", target=target, flags=flags)


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(ctypes.c_long(_number("pivot_root")), _c(new_root), _c(put_old)) != 0:
        raise _fail("pivot_root", new_root=new_root, put_old=put_old)


# openat2(2) resolve flags (linux/openat2.h)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# *at flags and the mount API's (linux/fcntl.h, linux/mount.h)
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """open(2) relative to `dir_fd` under the `resolve` restrictions; returns the new fd.
    RESOLVE_IN_ROOT treats `dir_fd` as "/" for every absolute symlink and "..", so a path
    from an image cannot name anything outside it."""
    how = _OpenHow(flags, mode, resolve)
    fd = _libc.syscall(
        ctypes.c_long(_number("openat2")),
        ctypes.c_int(dir_fd),
        _c(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        raise _fail("openat2", dir_fd=dir_fd, path=path, flags=oct(flags), resolve=hex(resolve))
    return fd


def open_tree(dir_fd: int, path: str, flags: int) -> int:
    """A file descriptor on the mount at `path`; with OPEN_TREE_CLONE (| AT_RECURSIVE) a
    detached copy of it (and its submounts) that `move_mount` attaches elsewhere."""
    fd = _libc.syscall(
        ctypes.c_long(_number("open_tree")), ctypes.c_int(dir_fd), _c(path), ctypes.c_uint(flags)
    )
    if fd < 0:
        raise _fail("open_tree", dir_fd=dir_fd, path=path, flags=hex(flags))
    return fd


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    result = _libc.syscall(
        ctypes.c_long(_number("move_mount")),
        ctypes.c_int(from_fd),
        _c(from_path),
        ctypes.c_int(to_fd),
        _c(to_path),
        ctypes.c_uint(flags),
    )
    if result != 0:
        raise _fail(
            "move_mount", from_fd=from_fd, from_path=from_path, to_fd=to_fd, to_path=to_path,
            flags=hex(flags),
        )  # fmt: skip


def mount_setattr(dir_fd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0) -> None:
    """Set (and clear) MOUNT_ATTR_* on the mount at `path`; with AT_RECURSIVE on every mount
    below it too, which a `mount(MS_REMOUNT | MS_BIND)` cannot do in one call."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(_number("mount_setattr")),
        ctypes.c_int(dir_fd),
        _c(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result != 0:
        raise _fail(
            "mount_setattr", dir_fd=dir_fd, path=path, flags=hex(flags), attr_set=hex(attr_set)
        )


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise _fail("unshare", flags=hex(flags))


def setns(fd: int, nstype: int = 0) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        raise _fail("setns", fd=fd, nstype=hex(nstype))


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, ctypes.c_size_t(len(raw))) != 0:
        raise _fail("sethostname", name=name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    result = _libc.prctl(ctypes.c_int(option), *args)
    if result < 0:
        raise _fail("prctl", option=option, arg2=arg2, arg3=arg3)
    return result


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks, bit N = capability number N)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in range(2):
        shift = 32 * index
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    nr = ctypes.c_long(_number("capset"))
    if _libc.syscall(nr, ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail("capset", effective=hex(effective), permitted=hex(permitted))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of `pid` (0: this thread)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    nr = ctypes.c_long(_number("capget"))
    if _libc.syscall(nr, ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail("capget", pid=pid)
    eff = data[0].effective | (data[1].effective << 32)
    prm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, prm, inh


# PyDLL keeps the GIL across the call, as os.fork() does around fork(2)
_libc_gil = ctypes.PyDLL(None, use_errno=True)


class _CloneArgs(ctypes.Structure):
    """struct clone_args (linux/sched.h), up to the `cgroup` field (CLONE_ARGS_SIZE_VER2)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
            "tls", "set_tid", "set_tid_size", "cgroup",
        )
    ]  # fmt: skip


CLONE_INTO_CGROUP = 0x200000000
_NR_CLONE3 = 435  # the same on every architecture (the generic syscall table)


def clone_process(flags: int, cgroup_fd: int = -1) -> tuple[int, int]:
    """fork(2) with namespace `flags`: returns (pid, pidfd) in the parent, (0, -1) in the child.

    The child starts in the new namespaces at once, so there is no intermediate process (and
    no second fork of this Python process). With `cgroup_fd` (an open cgroup v2 directory) the
    child is born in that cgroup (clone3's CLONE_INTO_CGROUP): moving a process there later
    through `cgroup.procs` takes the kernel's global cgroup lock for writing, which waits for
    an RCU grace period (5-15 ms per container here, most of a container's start-up).
    CPython's own fork bookkeeping runs around the raw system call exactly as in `os.fork()`.
    Raises OSError with errno ENOSYS or EINVAL where the kernel lacks clone3 or
    CLONE_INTO_CGROUP (before 5.7): the caller then clones without it and joins by writing.
    """
    pidfd = ctypes.c_int(-1)
    api = ctypes.pythonapi
    if cgroup_fd >= 0:
        args = _CloneArgs(
            flags=flags | CLONE_PIDFD | CLONE_INTO_CGROUP,
            pidfd=ctypes.addressof(pidfd),
            exit_signal=_SIGCHLD,
            cgroup=cgroup_fd,
        )
        api.PyOS_BeforeFork()
        pid = _libc_gil.syscall(
            ctypes.c_long(_NR_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
        )
        call = f"clone3(flags={hex(flags)}, cgroup={cgroup_fd})"
    else:
        number = _number("clone")  # may raise: before PyOS_BeforeFork takes its locks
        api.PyOS_BeforeFork()
        # x86_64 and aarch64 argument order: flags, stack, parent_tid (pidfd), child_tid, tls
        pid = _libc_gil.syscall(
            ctypes.c_long(number),
            ctypes.c_ulong(flags | CLONE_PIDFD | _SIGCHLD),
            ctypes.c_void_p(0),
            ctypes.byref(pidfd),
            ctypes.c_void_p(0),
            ctypes.c_void_p(0),
        )
        call = f"clone(flags={hex(flags)})"
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0, -1
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return pid, pidfd.value


# --- bpf(2): the device policy's program on cgroup v2 ------------------------------------------
# (linux/bpf.h) Only what a BPF_PROG_TYPE_CGROUP_DEVICE program needs: load, attach, query.

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # the attach type
BPF_F_ALLOW_MULTI = 2


class _BpfProgLoad(ctypes.Structure):
    """The BPF_PROG_LOAD member of union bpf_attr, up to `expected_attach_type`."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _BpfProgAttach(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


class _BpfProgQuery(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),
    ]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    return _libc.syscall(
        ctypes.c_long(_number("bpf")),
        ctypes.c_int(cmd),
        ctypes.byref(attr),
        ctypes.c_uint(ctypes.sizeof(attr)),
    )


def bpf_prog_load(
    prog_type: int, instructions: bytes, name: str, expected_attach_type: int = 0
) -> int:
    """Load a program; returns its file descriptor (close-on-exec, as every bpf fd). A refusal
    by the verifier raises OSError whose message ends with the verifier's own log."""
    if len(instructions) % 8:
        raise ValueError("eBPF instructions are 8 bytes each")
    code = ctypes.create_string_buffer(instructions, len(instructions))
    license_text = ctypes.create_string_buffer(b"GPL")  # not required for this type; harmless
    log = ctypes.create_string_buffer(1 << 16)
    attr = _BpfProgLoad(
        prog_type=prog_type,
        insn_cnt=len(instructions) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(license_text),
        log_level=1,
        log_size=len(log),
        log_buf=ctypes.addressof(log),
        prog_name=name.encode()[:15],
        expected_attach_type=expected_attach_type,
    )
    fd = _bpf(BPF_PROG_LOAD, attr)
    if fd < 0:
        error = _fail("bpf", cmd="BPF_PROG_LOAD", prog_type=prog_type, name=name)
        # the verifier's reason is the last line of its log before the "processed" summary
        verifier = [
            line.strip()
            for line in log.value.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith("processed ")
        ]
        if verifier:
            error = OSError(error.errno, f"{error.strerror}; verifier: {verifier[-1]}")
        raise error
    return fd


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = _BpfProgAttach(
        target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type, attach_flags=flags
    )
    if _bpf(BPF_PROG_ATTACH, attr) != 0:
        raise _fail("bpf", cmd="BPF_PROG_ATTACH", target_fd=target_fd, attach_type=attach_type)


def bpf_prog_query(
    target_fd: int, attach_type: int, max_programs: int = 64
) -> tuple[int, list[int]]:
    """(attach flags, ids of the programs attached directly to `target_fd` for `attach_type`)."""
    ids = (ctypes.c_uint32 * max_programs)()
    attr = _BpfProgQuery(
        target_fd=target_fd,
        attach_type=attach_type,
        prog_ids=ctypes.addressof(ids),
        prog_cnt=max_programs,
    )
    if _bpf(BPF_PROG_QUERY, attr) != 0:
        raise _fail("bpf", cmd="BPF_PROG_QUERY", target_fd=target_fd, attach_type=attach_type)
    return attr.attach_flags, list(ids[: attr.prog_cnt])
