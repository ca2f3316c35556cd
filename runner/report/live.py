"""The rich live view: a line per job with its status, stage, elapsed time and, while it
runs, the latest line of its output.

It renders from `RunState` (folded from events) on rich's own refresh thread; it never asks
the scheduler anything. When the run ends the view disappears and the summary takes its place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.events import Event
from runner.report.state import JobView, RunState
from runner.report.summary import STATUS_STYLE, format_duration

_ICONS = {
    "created": "·",
    "pending": "…",
    "running": "▶",
    "success": "✔",
    "failed": "✘",
    "canceled": "⊘",
    "skipped": "↷",
    "manual": "⏵",
}


def render_jobs(views: Iterable[JobView], now: float, width: int) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)  # icon + status
    table.add_column(no_wrap=True, overflow="ellipsis", max_width=max(12, width // 4))
    table.add_column(no_wrap=True, style="dim")  # stage
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis", style="dim", ratio=1)
    for view in views:
        table.add_row(
            _status_cell(view),
            view.name,
            view.stage,
            format_duration(view.elapsed(now)),
            _detail(view),
        )
    return table


def _status_cell(view: JobView) -> Text:
    status = view.status
    style = STATUS_STYLE.get(status, "")
    label = status
    if view.outcome is not None and view.outcome.status == "failed":
        if view.outcome.allowed_failure:
            style, label = "yellow", "failed*"
    elif status == "running" and view.attempt > 1:
        label = f"retry {view.attempt}"
    return Text(f"{_ICONS.get(status, ' ')} {label:<9}", style=style)


def _detail(view: JobView) -> str:
    if view.status == "running":
        return view.last_line.strip()
    if view.outcome is not None and view.outcome.message and view.status != "success":
        return view.outcome.message
    return ""


class LiveReporter:
    """Use as a context manager around the run; `handle` may be called from any thread."""

    def __init__(
        self, console: Console, jobs: Iterable[tuple[str, str]], refresh_per_second: float = 8
    ) -> None:
        self.console = console
        self.state = RunState(jobs)
        self.interval = 1 / refresh_per_second
        # Our own refresh thread rather than rich's, so that leaving the view joins it.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, name="live view", daemon=True)
        self._live = Live(
            get_renderable=self.renderable,
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def renderable(self) -> RenderableType:
        now, views = self.state.snapshot()
        return render_jobs(views, now, self.console.width)

    def handle(self, event: Event) -> None:
        self.state.apply(event)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._live.refresh()

    def __enter__(self) -> LiveReporter:
        self._live.start(refresh=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._live.stop()
