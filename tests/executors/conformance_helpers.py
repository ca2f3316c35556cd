"""Helpers of the conformance suite: find every process a stage started."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

import processes

from executors.base import BuildDirs, Executor

wait_for = processes.wait_for
hung_since = processes.hung_since


def new_marker() -> tuple[str, str]:
    """An environment entry that every process of a stage inherits, to find them later."""
    return "PYCI_CONFORMANCE_MARKER", uuid.uuid4().hex


def marked_processes(marker: tuple[str, str]) -> list[int]:
    """Live (non-zombie) processes whose environment holds the marker."""
    return processes.marked_processes(*marker)


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
