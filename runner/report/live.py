"""The rich live view: a line per job with its status, stage, elapsed time and, while it
runs, the latest line of its output; under it the pipeline's time and counts. When not every
job fits on the terminal, the running and failed ones stay in view.

It renders from `RunState` (folded from events) on its own refresh thread; it never asks
the scheduler anything. When the run ends the view disappears and the summary takes its place.
If drawing fails (the terminal, or the pipe FORCE_COLOR drew to, has gone), the thread stops
and the error is raised once from the next `handle`, on the thread of whoever reports: for a
reader gone (EPIPE) that ends the run (runner/report/__init__.py, StopWhenClosed).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.core.events import Event
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
        # Text, not str: a str cell is read as rich markup, and job names ("build: [linux,
        # amd64]") and job output ("[/]") are no markup
        table.add_row(
            _status_cell(view),
            Text(view.name),
            Text(view.stage),
            format_duration(view.elapsed(now)),
            Text(_detail(view)),
        )
    return table


# Which jobs stay on screen when not all fit: what runs, then what went wrong, then what waits.
_PRIORITY = {"running": 0, "failed": 1, "pending": 2, "canceled": 3}


def visible_jobs(views: list[JobView], limit: int) -> list[JobView]:
    """All jobs if they fit in `limit` rows, else the most interesting, in pipeline order."""
    if len(views) <= limit:
        return views
    ranked = sorted(range(len(views)), key=lambda i: (_PRIORITY.get(views[i].status, 9), i))
    return [views[i] for i in sorted(ranked[: max(limit, 1)])]


def status_counts(views: Iterable[JobView]) -> Text:
    counts: dict[str, int] = {}
    for view in views:
        key = view.shown_status
        if view.outcome is not None and view.outcome.allowed_failure:
            key = "allowed to fail"
        counts[key] = counts.get(key, 0) + 1
    order = ["running", "pending", "created", "success", "failed", "allowed to fail"]
    order += ["canceled", "skipped", "manual"]
    words = {"created": "waiting", "success": "passed", "pending": "queued"}
    text = Text()
    for key in order:
        if counts.get(key):
            if text:
                text.append(" · ", style="dim")
            text.append(f"{counts[key]} {words.get(key, key)}", style=STATUS_STYLE.get(key, ""))
    return text


def render_view(
    views: list[JobView], now: float, elapsed: float, width: int, height: int, title: str | None
) -> RenderableType:
    """The whole live view: a title, a line per job (as many as fit), and the counts."""
    shown = visible_jobs(views, height - 3)
    footer = Text(f"{format_duration(elapsed)}  ", style="bold")
    footer.append_text(status_counts(views))
    if len(shown) < len(views):
        footer.append(f"  (+{len(views) - len(shown)} jobs not shown)", style="dim")
    parts: list[RenderableType] = []
    if title:
        parts.append(Text(title, style="bold"))
    parts += [render_jobs(shown, now, width), footer]
    return Group(*parts)


def _status_cell(view: JobView) -> Text:
    status = view.shown_status
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
    if view.status == "created" and view.section == "delayed":
        return "delayed"
    if view.outcome is not None and view.outcome.message and view.status != "success":
        return view.outcome.message
    return ""


class LiveReporter:
    """Use as a context manager around the run; `handle` may be called from any thread.
    `title`: the header line (state.pipeline_header)."""

    def __init__(
        self,
        console: Console,
        jobs: Iterable[tuple[str, str]],
        refresh_per_second: float = 8,
        title: str | None = None,
    ) -> None:
        self.console = console
        self.title = title
        self.state = RunState(jobs)
        self.interval = 1 / refresh_per_second
        # Our own refresh thread rather than rich's, so that leaving the view joins it.
        self._stop = threading.Event()
        self.output_error: OSError | None = None  # why drawing stopped
        self._error_raised = False
        self._thread = threading.Thread(target=self._refresh_loop, name="live view", daemon=True)
        self._live = Live(
            get_renderable=self.renderable,
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def show_pipeline(self, header: str, manual: Iterable[str]) -> None:
        """Before the run starts: the header line and which jobs wait for a user."""
        self.title = header
        self.state.mark_manual(manual)

    def renderable(self) -> RenderableType:
        now, views = self.state.snapshot()
        elapsed = now - self.state.started_at
        size = self.console.size
        return render_view(views, now, elapsed, size.width, size.height, self.title)

    def handle(self, event: Event) -> None:
        self.state.apply(event)
        if self.output_error is not None and not self._error_raised:
            self._error_raised = True
            raise self.output_error

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._live.refresh()
            except OSError as exc:
                self.output_error = exc
                return

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
        if self.output_error is None:
            self._live.stop()
            return
        with contextlib.suppress(OSError):  # what is there to draw on fails again
            self._live.stop()
