"""A job's log as the build writes it: masked, section-marked, coverage-scanned, sent as events.

Everything a job prints, from its scripts or from pyci's own host-side stages, goes through one
`BuildLog`, which masks it and hands it to the reporter as `LogChunk` events. Section markers
use GitLab's trace format (`section_start:<unix time>:<name>\\r\\e[0K` + a bold cyan header), so
the log files read like a GitLab job log and runner mode can send them to GitLab unchanged.

A reporter that fails (the job's log file cannot be written) never raises into whoever wrote
the output (an executor relaying the script's output, a build stage): the first failure is
kept in `BuildLog.failure`, and the build turns it into the job's failure once the job's
processes are gone (build.py).
"""

from __future__ import annotations

import re
import threading
import time

from runner.build.masking import Masker
from runner.core.events import LogChunk, Reporter, SectionStarted

ANSI_CLEAR = "\x1b[0K"
ANSI_BOLD_CYAN = "\x1b[36;1m"
ANSI_BOLD_GREEN = "\x1b[32;1m"
ANSI_BOLD_RED = "\x1b[31;1m"
ANSI_YELLOW = "\x1b[0;33m"
ANSI_RESET = "\x1b[0;m"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class CoverageScanner:
    """GitLab's `coverage:` regex: the last line that matches wins; from its last match (last
    group if the regex has groups) the first number is the coverage. Colour codes are removed
    before matching, so coloured tool output matches a plain regex."""

    def __init__(self, pattern: str | None) -> None:
        self._regex = compile_coverage_regex(pattern) if pattern else None
        self._partial = ""
        self.value: str | None = None

    def feed(self, text: str) -> None:
        if self._regex is None:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._scan(line)

    def close(self) -> None:
        if self._partial:
            self._scan(self._partial)
            self._partial = ""

    def _scan(self, line: str) -> None:
        assert self._regex is not None
        line = _ANSI.sub("", line).rstrip("\r")
        matches = list(self._regex.finditer(line))
        if not matches:
            return
        last = matches[-1]
        groups = [g for g in last.groups() if g is not None]
        text = groups[-1] if groups else last.group(0)
        number = _NUMBER.search(text)
        if number:
            self.value = number.group(0)


def compile_coverage_regex(pattern: str) -> re.Pattern[str] | None:
    """`/regex/flags` as written in .gitlab-ci.yml (slashes optional); None if invalid."""
    body, flags = pattern, 0
    if len(pattern) >= 2 and pattern.startswith("/"):
        end = pattern.rfind("/")
        if end > 0:
            body = pattern[1:end]
            if "i" in pattern[end + 1 :]:
                flags |= re.IGNORECASE
    try:
        return re.compile(body, flags)
    except re.error:
        return None


class BuildLog:
    """The job's log stream (implements executors.base.JobLog); thread-safe."""

    def __init__(self, job: str, reporter: Reporter, masker: Masker, coverage: str | None):
        self.job = job
        self._reporter = reporter
        self._masker = masker
        self._coverage = CoverageScanner(coverage)
        self._lock = threading.Lock()
        self.failure: Exception | None = None  # the first event a reporter could not take

    def write(self, text: str) -> None:
        with self._lock:
            self._emit(self._masker.feed(text))

    def _emit(self, text: str) -> None:
        if text:
            self._coverage.feed(text)
            self._send(LogChunk(self.job, text))

    def _send(self, event: LogChunk | SectionStarted) -> None:
        try:
            self._reporter.handle(event)
        except Exception as exc:
            if self.failure is None:
                self.failure = exc

    def close(self) -> None:
        with self._lock:
            self._emit(self._masker.flush())
            self._coverage.close()

    @property
    def coverage(self) -> str | None:
        return self._coverage.value

    # -- pyci's own lines ----------------------------------------------------------------
    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def notice(self, text: str) -> None:
        self.line(f"{ANSI_BOLD_GREEN}{text}{ANSI_RESET}")

    def warning(self, text: str) -> None:
        self.line(f"{ANSI_YELLOW}WARNING: {text}{ANSI_RESET}")

    def error(self, text: str) -> None:
        self.line(f"{ANSI_BOLD_RED}ERROR: {text}{ANSI_RESET}")

    def section_start(self, name: str, header: str) -> None:
        with self._lock:
            self._send(SectionStarted(self.job, name, header))
        stamp = int(time.time())
        self.write(
            f"section_start:{stamp}:{name}\r{ANSI_CLEAR}{ANSI_BOLD_CYAN}{header}{ANSI_RESET}\n"
        )

    def section_end(self, name: str) -> None:
        self.write(f"section_end:{int(time.time())}:{name}\r{ANSI_CLEAR}")
