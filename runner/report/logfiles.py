"""Full job logs in `<state dir>/logs/<job>.log`, one file per job, rewritten on every run.

Retries append to the same file under a separator, so the log tells the whole story of the job.
The text is the job's trace as plain text: no colours, no section markers (grep-able, and
readable with any pager).
Job names may hold characters a file name cannot (matrix jobs: `test: [3.11, x]`) and may be
longer than a file name may be; runner/filenames.py makes them safe, short and distinct.

A log that cannot be written (a full disk, a directory made read-only) is the job's failure,
not the run's: the file is given up and every later event of that job raises `JobLogError`,
so the job's thread, which emits them, learns it and fails the job (runner/schedule/).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TextIO

from runner.core.events import Event, JobFinished, JobStarted, LogChunk
from runner.core.filenames import file_stem
from runner.report.plain import finished_words
from runner.report.text import LineBuffer, clean_line


class JobLogError(Exception):
    """The log file of `job` could not be written."""

    def __init__(self, job: str, path: Path, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(f"cannot write the log of job {job!r} to {path}: {reason}")
        self.job = job
        self.path = path


def log_file_name(job: str) -> str:
    return f"{file_stem(job)}.log"


def log_path(logs_dir: Path, job: str) -> Path:
    return logs_dir / log_file_name(job)


class LogFiles:
    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._files: dict[str, TextIO] = {}
        self._broken: dict[str, OSError] = {}  # job -> why its log was given up
        self._lines = LineBuffer()

    def handle(self, event: Event) -> None:
        if not isinstance(event, JobStarted | LogChunk | JobFinished):
            return
        cause = self._broken.get(event.job)
        if cause is not None:
            if isinstance(event, JobFinished):
                del self._broken[event.job]  # said on the job's thread already
                return
            raise JobLogError(event.job, log_path(self.logs_dir, event.job), cause)
        try:
            self._record(event)
        except OSError as exc:
            self._give_up(event.job, exc)
            if isinstance(event, JobFinished):
                del self._broken[event.job]  # nothing more will come for this job
            raise JobLogError(event.job, log_path(self.logs_dir, event.job), exc) from exc

    def _record(self, event: JobStarted | LogChunk | JobFinished) -> None:
        if isinstance(event, JobStarted):
            self._start(event)
        elif isinstance(event, LogChunk):
            for line in self._lines.feed(event.job, event.text):
                self._write_line(event.job, line)
        else:
            self._finish(event)

    def _give_up(self, job: str, cause: OSError) -> None:
        self._lines.flush(job)
        file = self._files.pop(job, None)
        if file is not None:
            # the buffered rest fails as the write did: it is lost either way
            with contextlib.suppress(OSError):
                file.close()
        self._broken[job] = cause

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
        file = self._files.get(event.job)
        if file is None:
            return  # never started (skipped, manual, canceled before it ran)
        file.write(f"--- {finished_words(event.outcome)}\n")
        self._files.pop(event.job)
        file.close()

    def close(self) -> None:
        for file in self._files.values():
            with contextlib.suppress(OSError):  # a full disk: the jobs said so already
                file.close()
        self._files.clear()
