"""The device policy: which device numbers a container may open, as in Docker's default.

A container's root keeps CAP_MKNOD (as in Docker), so it can make a node for any device
number in its writable /dev. What stops it from then opening the host's disk, /dev/kvm or
/dev/fuse is this policy, which the kernel checks at every open and mknod of a device node:
deny everything, then allow `mknod` of any node, and read/write/mknod of the few devices a
container is given (the nodes `devices.py` creates, ptmx and the container's own ptys).

Docker's default is moby's default spec (deny all; rwm for 1:3, 1:5, 1:8, 1:9, 5:0, 5:1; deny
10:229 fuse) followed by runc's default allowed devices (`c *:* m`, `b *:* m`, 1:3, 1:5, 1:7,
1:8, 1:9, 5:0, 5:2, 136:*, and 10:200 tun again since runc 1.2.4). pyci allows the same except
two, which it denies on purpose:
- 5:1 (/dev/console): Docker only ever puts a pty at /dev/console (a 136:* node); the 5:1 rule
  lets root in a container open the *host's* console, read keystrokes typed there and write
  to it. pyci never creates /dev/console.
- 10:200 (/dev/net/tun): creating a tun interface needs CAP_NET_ADMIN, which a job has not;
  runc removed the rule in 1.2.0 and only restored it for compatibility.

Two kernel interfaces hold the policy (cgroups.open_driver picks one):
- cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program (`assemble`), loaded once per process and
  attached to each container's cgroup before its PID 1 is cloned into it (`attach`). Removing
  the cgroup detaches it. The kernel runs it on the v2 side of a v1/v2 hybrid too;
- cgroup v1 (where no program can be loaded or no v2 hierarchy exists): the container's
  directory in the `devices` hierarchy, written as `a` to devices.deny, then one rule per
  write to devices.allow (`v1_writes`).
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass, replace
from typing import Literal

from executors.linux import syscalls

DeviceKind = Literal["c", "b", "a"]  # char, block, either


@dataclass(frozen=True)
class DeviceRule:
    """An allow rule: `kind` devices `major`:`minor` (None: any) for `access` (a subset of
    "rwm": read, write, mknod)."""

    kind: DeviceKind
    major: int | None
    minor: int | None
    access: str

    def __post_init__(self) -> None:
        if self.kind not in ("c", "b", "a"):
            raise ValueError(f"device rule kind {self.kind!r} is not c, b or a")
        if (
            not self.access
            or set(self.access) - set("rwm")
            or len(set(self.access)) != len(self.access)
        ):
            raise ValueError(f"device rule access {self.access!r} is not a subset of 'rwm'")
        # majors are 12 bits and minors 20 bits in the kernel; both fit an eBPF immediate
        for name, number, bits in (("major", self.major, 12), ("minor", self.minor, 20)):
            if number is not None and not 0 <= number < 1 << bits:
                raise ValueError(f"device rule {name} {number} is out of range")

    def v1_line(self) -> str:
        """The rule as cgroup v1's devices.allow reads it, e.g. `c 136:* rwm` (for kind c or
        b only: see `v1_writes`)."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"

    def matches(self, kind: str, major: int, minor: int, access: str) -> bool:
        """Whether this rule allows `access` (all of it) to device `kind` `major`:`minor`."""
        return (
            self.kind in ("a", kind)
            and self.major in (None, major)
            and self.minor in (None, minor)
            and set(access) <= set(self.access)
        )


DEFAULT_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("c", None, None, "m"),  # mknod of any node: CAP_MKNOD keeps its Docker meaning
    DeviceRule("b", None, None, "m"),
    DeviceRule("c", 1, 3, "rwm"),  # null
    DeviceRule("c", 1, 5, "rwm"),  # zero
    DeviceRule("c", 1, 7, "rwm"),  # full
    DeviceRule("c", 1, 8, "rwm"),  # random
    DeviceRule("c", 1, 9, "rwm"),  # urandom
    DeviceRule("c", 5, 0, "rwm"),  # tty
    DeviceRule("c", 5, 2, "rwm"),  # ptmx (the container's devpts instance's, via /dev/ptmx)
    DeviceRule("c", 136, None, "rwm"),  # /dev/pts/*
)


def allowed(
    kind: str, major: int, minor: int, access: str, rules: tuple[DeviceRule, ...] = DEFAULT_RULES
) -> bool:
    """What the policy answers for one access: allowed if any rule allows all of it."""
    return any(rule.matches(kind, major, minor, access) for rule in rules)


# --- cgroup v1 ---------------------------------------------------------------------------------


def v1_writes(rules: tuple[DeviceRule, ...] = DEFAULT_RULES) -> list[tuple[str, str]]:
    """(file, value) writes that set a fresh v1 devices cgroup to `rules`, in order: `a` to
    devices.deny first (it drops the exceptions inherited from the parent, and is refused once
    the cgroup has children), then each rule on its own (the file takes one rule per write).
    A rule for either kind is written once per kind: v1 reads a line starting with `a` as
    "every device, every access", whatever follows it."""
    writes = [("devices.deny", "a")]
    for rule in rules:
        kinds = ("c", "b") if rule.kind == "a" else (rule.kind,)
        writes += [("devices.allow", replace(rule, kind=kind).v1_line()) for kind in kinds]
    return writes


# --- cgroup v2: the BPF program ------------------------------------------------------------------

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, access_type being
# (access << 16) | type (linux/bpf.h)
_KIND_CODE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# eBPF opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source
_LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
_MOV32_REG = 0xBC  # dst = (u32) src
_AND32_IMM = 0x54
_RSH32_IMM = 0x74
_MOV64_IMM = 0xB7
_JNE_IMM = 0x55  # if dst != imm: pc += off
_JSET_IMM = 0x45  # if dst & imm: pc += off
_EXIT = 0x95

# registers: r1 holds the context on entry; r0 is the verdict (1 allow, 0 deny)
_R0, _R1, _ACCESS, _KIND, _MAJOR, _MINOR = 0, 1, 2, 3, 4, 5


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } on a
    # little-endian machine (x86_64, aarch64): dst in the low nibble
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that return 1 when `rule` allows the access, else fall through to the next
    rule: every failed test jumps to the end of the block."""
    tests: list[tuple[int, int, int]] = []  # (opcode, register, immediate)
    if rule.kind != "a":
        tests.append((_JNE_IMM, _KIND, _KIND_CODE[rule.kind]))
    refused = sum(bit for letter, bit in _ACCESS_BITS.items() if letter not in rule.access)
    if refused:  # any requested access the rule does not grant sends us on
        tests.append((_JSET_IMM, _ACCESS, refused))
    if rule.major is not None:
        tests.append((_JNE_IMM, _MAJOR, rule.major))
    if rule.minor is not None:
        tests.append((_JNE_IMM, _MINOR, rule.minor))
    verdict = [_insn(_MOV64_IMM, _R0, imm=1), _insn(_EXIT)]
    block_length = len(tests) + len(verdict)
    return [
        _insn(code, register, off=block_length - (index + 1), imm=immediate)
        for index, (code, register, immediate) in enumerate(tests)
    ] + verdict


def assemble(rules: tuple[DeviceRule, ...] = DEFAULT_RULES) -> bytes:
    """A BPF_PROG_TYPE_CGROUP_DEVICE program that allows what one of `rules` allows and
    denies everything else (the rules are all allows, so their order does not matter)."""
    program = [
        _insn(_LDX_MEM_W, _ACCESS, _R1, off=0),
        _insn(_MOV32_REG, _KIND, _ACCESS),
        _insn(_AND32_IMM, _KIND, imm=0xFFFF),
        _insn(_RSH32_IMM, _ACCESS, imm=16),
        _insn(_LDX_MEM_W, _MAJOR, _R1, off=4),
        _insn(_LDX_MEM_W, _MINOR, _R1, off=8),
    ]
    for rule in rules:
        program.extend(_rule_block(rule))
    program += [_insn(_MOV64_IMM, _R0, imm=0), _insn(_EXIT)]
    return b"".join(program)


def load_program(rules: tuple[DeviceRule, ...] = DEFAULT_RULES) -> int:
    """Load the policy's program into the kernel; returns its fd (OSError if refused)."""
    return syscalls.bpf_prog_load(
        syscalls.BPF_PROG_TYPE_CGROUP_DEVICE,
        assemble(rules),
        "pyci_devices",
        syscalls.BPF_CGROUP_DEVICE,
    )


class _SharedProgram:
    """The default policy's program, loaded on first use and kept for the process's life: one
    program serves every container (each attach takes its own reference)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None

    def fd(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = load_program()
            return self._fd


_shared_program = _SharedProgram()


def program_loads() -> bool:
    """Whether this process may load the policy's program (CAP_SYS_ADMIN or CAP_BPF, a kernel
    with cgroup BPF, no seccomp filter refusing bpf(2)); the program is then kept."""
    try:
        _shared_program.fd()
    except OSError:
        return False
    return True


def attach(cgroup_dir: str) -> None:
    """Attach the default policy to a cgroup v2 directory, with BPF_F_ALLOW_MULTI as runc
    does: a program an outer manager (systemd, a container engine) attached to an ancestor
    keeps running too, and an access must pass every one of them."""
    program = _shared_program.fd()
    directory = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syscalls.bpf_prog_attach(
            directory, program, syscalls.BPF_CGROUP_DEVICE, syscalls.BPF_F_ALLOW_MULTI
        )
    finally:
        os.close(directory)
