"""Docker's default seccomp policy, loaded through libseccomp (ctypes on libseccomp.so.2).

Docker's profile is an allowlist: unknown syscalls fail with EPERM. We build the same shape from
libseccomp's own syscall table for this architecture: every syscall it names is allowed except
the set Docker keeps out of a default container (kernel modules, kexec, mount and namespace
calls, keyrings, clock setting, tracing other processes, bpf, perf, io_uring, NUMA policy,
quota, swap, reboot, ...), plus Docker's argument rules: `clone` without namespace flags,
`clone3` answered with ENOSYS so libc falls back to `clone`, `socket` for any family but
AF_VSOCK, `personality` only for the harmless personas. A syscall newer than libseccomp's table
is unknown to the filter and therefore denied, as with Docker.

No Python binding is required: the handful of libseccomp functions used are called through
ctypes, and each failure names the function and its arguments.
"""

from __future__ import annotations

import ctypes
import errno
import os

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE = 1
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
SCMP_ARCH_NATIVE = 0
MAX_SYSCALL_NUMBER = 1024

CLONE_NAMESPACE_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
AF_VSOCK = 40
ALLOWED_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

_BLOCKED_NAMES = """
    _sysctl acct add_key afs_syscall bpf clock_settime create_module
    delete_module fanotify_init finit_module fsconfig fsmount fsopen fspick get_kernel_syms
    get_mempolicy getpmsg init_module io_uring_enter io_uring_register io_uring_setup ioperm
    iopl kcmp kexec_file_load kexec_load keyctl lookup_dcookie mbind migrate_pages mount
    mount_setattr move_mount move_pages name_to_handle_at nfsservctl open_by_handle_at
    open_tree perf_event_open pidfd_getfd pivot_root process_madvise process_vm_readv
    process_vm_writev ptrace putpmsg query_module quotactl quotactl_fd reboot request_key
    security set_mempolicy set_mempolicy_home_node setdomainname sethostname setns
    settimeofday stime swapoff swapon syslog sysfs tuxcall umount umount2 unshare uselib
    userfaultfd ustat vhangup vm86 vm86old vserver
"""
BLOCKED = frozenset(_BLOCKED_NAMES.split())
# syscalls allowed only with the argument rules below
CONDITIONAL = frozenset({"clone", "clone3", "socket", "personality"})


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        # the soname first: find_library runs `ldconfig -p` (a process, ~5 ms of the fork
        # server's start-up), needed only where the library has another name
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            from ctypes.util import find_library

            name = find_library("seccomp") or "libseccomp.so.2"
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError as exc:
                raise OSError(f"libseccomp is not installed ({name}): {exc}") from exc
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
        lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        _lib = lib
    return _lib


def _check(result: int, call: str, **args: object) -> None:
    if result < 0:  # libseccomp returns -errno
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise OSError(-result, f"{call}({shown}): {os.strerror(-result)}")


def known_syscalls() -> dict[str, int]:
    """Every syscall libseccomp names for this architecture: name -> number."""
    lib = _library()
    libc = ctypes.CDLL(None)
    names = {}
    for number in range(MAX_SYSCALL_NUMBER):
        pointer = lib.seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, number)
        if pointer:
            names[ctypes.string_at(pointer).decode()] = number
            libc.free(ctypes.c_void_p(pointer))
    return names


def allowed_syscalls() -> list[str]:
    return sorted(set(known_syscalls()) - BLOCKED - CONDITIONAL)


def _rule(ctx: int, action: int, name: str, *conditions: tuple[int, int, int, int]) -> None:
    lib = _library()
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        return  # not a syscall of this architecture
    array = (_ArgCmp * max(1, len(conditions)))(*[_ArgCmp(*c) for c in conditions])
    result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
    _check(result, "seccomp_rule_add_array", syscall=name, conditions=conditions)


def compile_default_profile() -> bytes:
    """The policy as a classic BPF program (what the kernel loads), built by libseccomp."""
    # libseccomp writes it to a file descriptor: an anonymous memory file (tempfile's import
    # alone cost the fork server ~12 ms at every start)
    fd = os.memfd_create("pyci-seccomp-bpf", os.MFD_CLOEXEC)
    try:
        _build(lambda ctx: _check(_library().seccomp_export_bpf(ctx, fd), "seccomp_export_bpf"))
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


_compiled: bytes | None = None


def preload() -> None:
    """Compile once (about 10 ms) in the fork server, so containers only load (~50 µs)."""
    global _compiled
    if _compiled is None:
        _compiled = compile_default_profile()


def load_default_profile() -> None:
    """Install the filter on the calling thread (inherited across fork and exec). Needs
    no_new_privs or CAP_SYS_ADMIN."""
    preload()
    assert _compiled is not None
    load_program(_compiled)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_BPF_INSTRUCTION_SIZE = 8


def load_program(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // _BPF_INSTRUCTION_SIZE, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.prctl(
        ctypes.c_int(PR_SET_SECCOMP),
        ctypes.c_ulong(SECCOMP_MODE_FILTER),
        ctypes.c_void_p(ctypes.addressof(fprog)),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(
            err,
            f"prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, <{fprog.len} insns>): {os.strerror(err)}",
        )


def load_with_libseccomp() -> None:
    """Build and load in one go through libseccomp (slower; used to cross-check)."""
    _build(lambda ctx: _check(_library().seccomp_load(ctx), "seccomp_load"))


def _build(finish) -> None:
    lib = _library()
    ctx = lib.seccomp_init(_act_errno(errno.EPERM))
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init(def_action=ERRNO(EPERM)): failed")
    try:
        for name in allowed_syscalls():
            _rule(ctx, SCMP_ACT_ALLOW, name)
        _rule(ctx, SCMP_ACT_ALLOW, "clone", (0, SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0))
        _rule(ctx, _act_errno(errno.ENOSYS), "clone3")
        _rule(ctx, SCMP_ACT_ALLOW, "socket", (0, SCMP_CMP_NE, AF_VSOCK, 0))
        for persona in ALLOWED_PERSONAS:
            _rule(ctx, SCMP_ACT_ALLOW, "personality", (0, SCMP_CMP_EQ, persona, 0))
        finish(ctx)
    finally:
        lib.seccomp_release(ctx)
