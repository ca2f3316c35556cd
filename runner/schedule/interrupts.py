"""Ctrl-C, SIGTERM and SIGHUP during a run: the first cancels, the second stops at once.

SIGTERM (`kill`, systemd, CI) and SIGHUP (the terminal closed) are taken as Ctrl-C: a run
killed outright would leave its jobs' mounts and cgroups to the next run's recovery.
The first signal sets `cancel`: running jobs are killed, their after_script still
runs (at most 10 s, build.py), nothing new starts. The second sets `abort`: canceled jobs'
after_script is killed too, so the run ends as soon as the jobs' clean-up is done. Should even
that not end it within FORCE_GRACE_SECONDS (something in pyci is stuck), pyci exits there and
then; the next run's recovery removes what it left (docs/run.md).

Exit codes follow the shell's convention for a program ended by a signal: 128 + its number,
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP (the first signal decides).

The handler runs on the main thread between any two bytecodes, possibly while that thread
holds a reporter's or a stream's lock: so it only sets events and writes with os.write.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

FORCE_GRACE_SECONDS = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Interrupts:
    """What the user asked for while the run went on."""

    cancel: threading.Event
    abort: threading.Event
    first: int | None = None  # the first signal received
    count: int = 0
    wake: threading.Event = field(default_factory=threading.Event)  # 2nd signal, or the end

    @property
    def exit_code(self) -> int | None:
        """128 + the first signal's number; None when no signal came."""
        return None if self.first is None else 128 + self.first

    def on_signal(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.first is None:
            self.first = signum
        if self.count == 1:
            self.cancel.set()
            message = "canceling the pipeline... (again to stop at once)"
        else:
            self.abort.set()
            self.wake.set()
            message = "stopping now: after_script of canceled jobs is stopped too"
        with contextlib.suppress(OSError):
            os.write(sys.stderr.fileno(), f"\n{message}\n".encode())


@contextlib.contextmanager
def cancel_on_signals(cancel: threading.Event, abort: threading.Event) -> Iterator[Interrupts]:
    """SIGINT, SIGTERM and SIGHUP handled as above for the duration of the block (the previous
    handlers come back after it). Off the main thread no handler can be installed: the block
    runs with none."""
    interrupts = Interrupts(cancel, abort)
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    done = threading.Event()
    watchdog = threading.Thread(
        target=_exit_if_stuck, args=(interrupts, done), name="pyci-force-exit", daemon=True
    )
    watchdog.start()
    previous = {sig: signal.signal(sig, interrupts.on_signal) for sig in SIGNALS}
    try:
        yield interrupts
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        done.set()
        interrupts.wake.set()
        watchdog.join()


def _exit_if_stuck(interrupts: Interrupts, done: threading.Event) -> None:
    """After the second signal, the run has FORCE_GRACE_SECONDS to end."""
    interrupts.wake.wait()
    if done.wait(FORCE_GRACE_SECONDS):
        return
    with contextlib.suppress(OSError):
        message = f"pyci: still not stopped {FORCE_GRACE_SECONDS:g}s after the second signal"
        os.write(sys.stderr.fileno(), f"{message}; exiting now\n".encode())
    os._exit(interrupts.exit_code or 130)
