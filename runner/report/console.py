"""The rich console pyci draws with (the live view, the summary).

rich's answer to a reader gone (`BrokenPipeError`) is `SystemExit(1)`, raised on whichever
thread was drawing: on the live view's refresh thread that ends the thread and nothing else,
on the main thread it ends pyci with 1 and no word. rich leaves the choice to a subclass, so
here a broken pipe stays the `BrokenPipeError` it is, and the run decides as for any other
stream: cancel and exit 141 (runner/report/__init__.py, runner/commands/run.py, runner/cli.py).
"""

from __future__ import annotations

import errno
import os

from rich.console import Console


class PyciConsole(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True  # later prints are dropped, not failed again
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
