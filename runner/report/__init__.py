"""Reporters: each folds the run's events into its own output (live view, plain lines, log
files, JSON and JUnit reports). `FanOut` hands every event to all of them."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from runner.events import Event, Reporter


class FanOut:
    """Passes each event to every reporter in turn, one event at a time (reporters need not
    lock against each other's calls)."""

    def __init__(self, reporters: Iterable[Reporter]) -> None:
        self.reporters = list(reporters)
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        with self._lock:
            for reporter in self.reporters:
                reporter.handle(event)
