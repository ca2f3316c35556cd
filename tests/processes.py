"""Shared test helpers: find the processes a job started by a marker in their environment."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def marked_processes(key: str, value: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds `key=value`."""
    needle = f"{key}={value}".encode()
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


# A watchdog, not a speed limit: how long a stage may take before a test calls it hung. Far
# longer than any stage takes on a loaded machine, far shorter than the `sleep 300` that a
# stage waiting for its leftovers (or ignoring its timeout or cancel) would sit in.
HANG_SECONDS = 60.0


def hung_since(started: float) -> bool:
    """Whether more than HANG_SECONDS passed since `started` (a `time.monotonic()`)."""
    return time.monotonic() - started > HANG_SECONDS


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
