"""Clean-up that need not delay a result: removing finished jobs' and containers' directories.

A job's outcome is reported, and the next job starts, without waiting for its files to be
deleted (a few ms per job on disk, more for big trees). Whatever is pending is finished before
pyci exits; a run killed meanwhile leaves directories that the next run's recovery finds by
their owner's pid.
"""

from __future__ import annotations

import atexit
import queue
import threading
import traceback
from collections.abc import Callable


class _BackgroundQueue:
    """Runs clean-up actions one after another on a background thread. `finish()` waits for
    all pending ones; it runs at pyci's exit at the latest."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, removal: Callable[[], None]) -> None:
        with self._lock:
            self._queue.put(removal)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="pyci-remover", daemon=True)
                self._thread.start()

    def finish(self) -> None:
        self._queue.join()

    def _work(self) -> None:
        # The thread ends as soon as nothing is pending, so no thread outlives the work (pyci
        # may be used in-process); the empty check and `submit` share the lock, so a removal
        # submitted meanwhile either is seen here or starts a new thread.
        while True:
            with self._lock:
                if self._queue.empty():
                    self._thread = None
                    return
                removal = self._queue.get()
            try:
                removal()
            except BaseException:  # SystemExit too: the worker must outlive any removal,
                traceback.print_exc()  # or later ones would wait for it (and exit with them)
            finally:
                self._queue.task_done()


_queue = _BackgroundQueue()
remove_later = _queue.submit
finish_removals = _queue.finish
atexit.register(finish_removals)
