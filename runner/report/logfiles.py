"""Full job logs in `<state dir>/logs/<job>.log`, one file per job, rewritten on every run.

Retries append to the same file under a separator, so the log tells the whole story of the job.
The text is the job's trace as plain text: no colours, no section markers (grep-able, and
readable with any pager).
Job names may hold characters a file name cannot (matrix jobs: `test: [3.11, x]`); those are
replaced, and a short hash keeps two such names from landing on the same file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TextIO

from runner.events import Event, JobFinished, JobStarted, LogChunk
from runner.report.plain import finished_words
from runner.report.text import LineBuffer, clean_line

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def log_file_name(job: str) -> str:
    safe = _UNSAFE.sub("_", job).strip("._") or "job"
    if safe != job:
        safe = f"{safe}-{hashlib.sha256(job.encode()).hexdigest()[:8]}"
    return f"{safe}.log"


def log_path(logs_dir: Path, job: str) -> Path:
    return logs_dir / log_file_name(job)


class LogFiles:
    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._files: dict[str, TextIO] = {}
        self._lines = LineBuffer()

    def handle(self, event: Event) -> None:
        if isinstance(event, JobStarted):
            self._start(event)
        elif isinstance(event, LogChunk):
            for line in self._lines.feed(event.job, event.text):
                self._write_line(event.job, line)
        elif isinstance(event, JobFinished):
            self._finish(event)

    def _write_line(self, job: str, line: str) -> None:
        cleaned = clean_line(line, colors=False)
        file = self._files.get(job)
        if cleaned is not None and file is not None:
            file.write(cleaned + "\n")
            file.flush()  # a user tailing the log sees output as it comes

    def _start(self, event: JobStarted) -> None:
        file = self._files.get(event.job)
        if file is None:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            path = log_path(self.logs_dir, event.job)
            file = self._files[event.job] = path.open("w", encoding="utf-8", errors="replace")
        else:
            rest = self._lines.flush(event.job)
            if rest is not None:
                self._write_line(event.job, rest)
            file.write(f"\n=== attempt {event.attempt} ===\n")
        file.flush()

    def _finish(self, event: JobFinished) -> None:
        rest = self._lines.flush(event.job)
        if rest is not None:
            self._write_line(event.job, rest)
        file = self._files.pop(event.job, None)
        if file is None:
            return  # never started (skipped, manual, canceled before it ran)
        file.write(f"--- {finished_words(event.outcome)}\n")
        file.close()

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
