"""Find the processes a test job started: every job exports a unique marker variable."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from runner.jobspec import Variable


def new_marker() -> Variable:
    return Variable("PYCI_TEST_MARKER", uuid.uuid4().hex)


def marked_processes(marker: Variable) -> list[int]:
    """Live (non-zombie) processes whose environment holds the marker."""
    needle = f"{marker.key}={marker.value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat[stat.rfind(")") + 2] != "Z":
            found.append(int(entry))
    return found


def wait_for(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
