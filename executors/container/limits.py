"""A container's resource limits: Docker's syntax, the operator's ceilings, the job's requests.

The operator sets ceilings (`--memory`, `--cpus`, `--pids-limit`, i.e. `ContainerSettings`);
a job may ask for less through its variables (`PYCI_MEMORY_LIMIT`, `PYCI_CPU_LIMIT`,
`PYCI_PIDS_LIMIT`), never for more: the job's code is untrusted, and so is what it asks for.
A request above the ceiling is capped to it, with a note for the job's log.

`0` means "no limit", as in Docker (and `-1` too for the process limit). For a job variable
that means "no limit of the job's own": the operator's ceiling, if any, stays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from executors.container.cgroupfs import Limits
from executors.sizes import UNITS, parse_size

MEMORY_VARIABLE = "PYCI_MEMORY_LIMIT"
CPUS_VARIABLE = "PYCI_CPU_LIMIT"
PIDS_VARIABLE = "PYCI_PIDS_LIMIT"

# Docker refuses less ("Minimum memory limit allowed is 6MB"): below that a container's own
# set-up is killed by the OOM killer, which would read as a broken runner
MIN_MEMORY = 6 << 20
# one millisecond of CPU per 100 ms period: the smallest quota the kernel takes (Docker's
# minimum of --cpus too)
MIN_CPUS = 0.01


class LimitError(ValueError):
    """A value that is not a valid limit; the message names the value."""


def parse_memory(text: str) -> int:
    """`512m`, `1g`, `1.5GiB`, `1048576` -> bytes (Docker's syntax). Syntax only: 0 is 0."""
    try:
        return parse_size(text)
    except ValueError:
        raise LimitError(f"invalid memory size {text!r} (use e.g. 512m or 2g)") from None


def memory_limit(text: str) -> int | None:
    """A memory limit in bytes; None for `0` (no limit)."""
    size = parse_memory(text)
    if size == 0:
        return None
    if size < MIN_MEMORY:
        raise LimitError(f"memory limit {text!r} is below the minimum of 6m")
    return size


def cpus_limit(text: str) -> float | None:
    """A number of CPUs (`1.5`, `0.25`); None for `0` (no limit)."""
    try:
        cpus = float(text)
    except ValueError:
        raise LimitError(f"invalid number of CPUs {text!r} (use e.g. 1.5)") from None
    if not math.isfinite(cpus) or cpus < 0:
        raise LimitError(f"invalid number of CPUs {text!r} (use e.g. 1.5)")
    if cpus == 0:
        return None
    if cpus < MIN_CPUS:
        raise LimitError(f"CPU limit {text!r} is below the minimum of {MIN_CPUS}")
    return cpus


def pids_limit(text: str) -> int | None:
    """A maximum number of processes; None for `0` or `-1` (no limit, as in Docker)."""
    try:
        pids = int(text)
    except ValueError:
        raise LimitError(f"invalid process limit {text!r} (a whole number)") from None
    if pids < -1:
        raise LimitError(f"invalid process limit {text!r} (0 or -1: no limit)")
    return pids if pids > 0 else None


def format_memory(size: int) -> str:
    """Bytes in the largest unit that divides them: 67108864 -> `64m`."""
    for power in range(len(UNITS) - 1, 0, -1):
        if size % 1024**power == 0:
            return f"{size // 1024**power}{UNITS[power]}"
    return str(size)


def ceiling(memory: int | None, cpus: float | None, pids: int | None) -> Limits:
    """The operator's limits as `Limits`, where 0 (and -1 processes) means none."""
    return Limits(
        memory if memory else None,
        cpus if cpus else None,
        pids if pids is not None and pids > 0 else None,
    )


_Value = TypeVar("_Value", int, float)


def job_limits(operator: Limits, variable: Callable[[str], str | None]) -> tuple[Limits, list[str]]:
    """The limits of a job's containers: its variables' requests under the operator's ceilings.

    `variable(name)` is the job's value of a variable (None when unset). Returns the limits and
    one note per request that was capped. Raises `LimitError` naming the variable."""
    notes: list[str] = []
    memory = _request(
        MEMORY_VARIABLE,
        variable(MEMORY_VARIABLE),
        memory_limit,
        operator.memory_bytes,
        format_memory,
        notes,
    )
    cpus = _request(
        CPUS_VARIABLE, variable(CPUS_VARIABLE), cpus_limit, operator.cpus, "{:g}".format, notes
    )
    pids = _request(
        PIDS_VARIABLE, variable(PIDS_VARIABLE), pids_limit, operator.pids_max, str, notes
    )
    return Limits(memory, cpus, pids), notes


def _request(
    name: str,
    text: str | None,
    parse: Callable[[str], _Value | None],
    ceiling: _Value | None,
    shown: Callable[[_Value], str],
    notes: list[str],
) -> _Value | None:
    if not text:
        return ceiling
    try:
        asked = parse(text)
    except LimitError as exc:
        raise LimitError(f"variable {name}: {exc}") from None
    if asked is None:  # 0: the job sets no limit of its own
        return ceiling
    if ceiling is not None and asked > ceiling:
        notes.append(
            f"{name}={text} is above the runner's limit of {shown(ceiling)}: using {shown(ceiling)}"
        )
        return ceiling
    return asked
