"""Helpers of the conformance suite: find every process a stage started."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from executors.base import BuildDirs, Executor


def new_marker() -> tuple[str, str]:
    """An environment entry that every process of a stage inherits, to find them later."""
    return "PYCI_CONFORMANCE_MARKER", uuid.uuid4().hex


def marked_processes(marker: tuple[str, str]) -> list[int]:
    """Live (non-zombie) processes whose environment holds the marker."""
    needle = f"{marker[0]}={marker[1]}".encode()
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


@dataclass
class CollectingLog:
    parts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, text: str) -> None:
        with self.lock:
            self.parts.append(text)

    @property
    def text(self) -> str:
        with self.lock:
            return "".join(self.parts)


@dataclass
class Prepared:
    executor: Executor
    dirs: BuildDirs
    log: CollectingLog
