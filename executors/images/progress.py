"""What a pull reports while it works: one bar per layer on a terminal, plain lines elsewhere.

`pull_image` calls a `PullProgress`; it never prints by itself. `RichProgress` shows bytes and
speed per layer (rich's `Progress`); `PlainProgress` writes one line when a layer starts and
one when it is done, which suits CI logs and job logs.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol, TextIO


class PullProgress(Protocol):
    def resolved(self, reference: str, digest: str, layers: int) -> None: ...
    def layer_start(self, digest: str, size: int, cached: bool) -> None: ...
    def layer_bytes(self, digest: str, count: int) -> None: ...
    def layer_extracting(self, digest: str) -> None: ...
    def layer_done(self, digest: str) -> None: ...
    def finished(self) -> None: ...


class NullProgress:
    def resolved(self, reference: str, digest: str, layers: int) -> None:
        pass

    def layer_start(self, digest: str, size: int, cached: bool) -> None:
        pass

    def layer_bytes(self, digest: str, count: int) -> None:
        pass

    def layer_extracting(self, digest: str) -> None:
        pass

    def layer_done(self, digest: str) -> None:
        pass

    def finished(self) -> None:
        pass


def short(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class PlainProgress(NullProgress):
    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._started: dict[str, tuple[float, int]] = {}

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def resolved(self, reference: str, digest: str, layers: int) -> None:
        self._say(f"{reference}: resolved to {digest} ({layers} layers)")

    def layer_start(self, digest: str, size: int, cached: bool) -> None:
        if cached:
            self._say(f"{short(digest)}: already present")
        else:
            self._started[digest] = (time.monotonic(), size)
            self._say(f"{short(digest)}: downloading {human_bytes(size)}")

    def layer_done(self, digest: str) -> None:
        if digest in self._started:
            began, size = self._started.pop(digest)
            elapsed = max(time.monotonic() - began, 1e-6)
            self._say(f"{short(digest)}: done in {elapsed:.2f} s ({human_bytes(size / elapsed)}/s)")


class RichProgress(NullProgress):
    """Live bars; use as a context manager around the pull."""

    def __init__(self, console=None):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, object] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def resolved(self, reference: str, digest: str, layers: int) -> None:
        self._progress.console.print(f"{reference}: {digest} ({layers} layers)", markup=False)

    def layer_start(self, digest: str, size: int, cached: bool) -> None:
        label = f"{short(digest)} {'cached' if cached else 'pulling'}"
        task = self._progress.add_task(label, total=size, completed=size if cached else 0)
        self._tasks[digest] = task

    def layer_bytes(self, digest: str, count: int) -> None:
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.advance(task, count)

    def layer_extracting(self, digest: str) -> None:
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.update(task, description=f"{short(digest)} extracting")

    def layer_done(self, digest: str) -> None:
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.update(task, description=f"{short(digest)} done")
