"""Reporters: each folds the run's events into its own output (live view, plain lines, log
files, JSON and JUnit reports). `FanOut` hands every event to all of them; `StopWhenClosed`
turns the user's output going away (`pyci run | head`) into one call instead of an error."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable

from runner.core.events import Event, Reporter


class FanOut:
    """Passes each event to every reporter in turn, one event at a time (reporters need not
    lock against each other's calls). One reporter's failure does not keep the event from
    the others; the first failure is raised once all have had it."""

    def __init__(self, reporters: Iterable[Reporter]) -> None:
        self.reporters = list(reporters)
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        failure: Exception | None = None
        with self._lock:
            for reporter in self.reporters:
                try:
                    reporter.handle(event)
                except Exception as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure


class StopWhenClosed:
    """Wraps the reporter that writes to the user's terminal or pipe. When its reader has
    gone (EPIPE: `pyci run | head -1`), `on_closed` is called once and later events are
    dropped: nobody reads them, and the run should end rather than fail job after job."""

    def __init__(self, reporter: Reporter, on_closed: Callable[[], None]) -> None:
        self.reporter = reporter
        self.on_closed = on_closed
        self.closed = False

    def handle(self, event: Event) -> None:
        if self.closed:
            return
        try:
            self.reporter.handle(event)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self.closed = True
            self.on_closed()
