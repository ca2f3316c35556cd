"""`--junit-report FILE`: the jobs as a JUnit XML test suite (one test case per job).

A failed job is a `<failure>` (an allowed failure too, as GitLab shows it in red-amber; its
message says it was allowed), a canceled job an `<error>`, a skipped or manual job `<skipped>`.
The tail of the job's log goes into `<system-out>` so CI dashboards show why it failed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from runner.core.events import Event, JobOutcome, PipelineFinished
from runner.report.json_report import ChildRows, write_atomically
from runner.report.logfiles import log_path
from runner.report.plain import finished_words

_LOG_TAIL_CHARS = 4000


def junit_document(
    jobs: Iterable[tuple[str, str]], finished: PipelineFinished, logs_dir: Path | None
) -> ET.Element:
    rows = [
        (name, stage, finished.outcomes.get(name, JobOutcome("created"))) for name, stage in jobs
    ]
    suite = ET.Element(
        "testsuite",
        name="pyci pipeline",
        tests=str(len(rows)),
        failures=str(sum(o.status == "failed" for _, _, o in rows)),
        errors=str(sum(o.status == "canceled" for _, _, o in rows)),
        skipped=str(sum(o.status in ("skipped", "manual", "created") for _, _, o in rows)),
        time=f"{finished.duration:.3f}",
    )
    for name, stage, outcome in rows:
        case = ET.SubElement(
            suite, "testcase", classname=stage, name=name, time=f"{outcome.duration:.3f}"
        )
        words = finished_words(outcome)
        if outcome.status == "failed":
            ET.SubElement(case, "failure", message=words, type=outcome.failure_reason or "failed")
        elif outcome.status == "canceled":
            ET.SubElement(case, "error", message=words, type="canceled")
        elif outcome.status in ("skipped", "manual", "created"):
            ET.SubElement(case, "skipped", message=words)
        tail = _log_tail(logs_dir, name) if outcome.status in ("failed", "canceled") else ""
        if tail:
            ET.SubElement(case, "system-out").text = tail
    return suite


def _log_tail(logs_dir: Path | None, job: str) -> str:
    if logs_dir is None:
        return ""
    path = log_path(logs_dir, job)
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    # XML 1.0 cannot carry most control characters (terminal colours, for one)
    return "".join(c for c in text[-_LOG_TAIL_CHARS:] if c in "\t\n\r" or c >= " ")


class JunitReport:
    def __init__(self, path: Path, jobs: Iterable[tuple[str, str]], logs_dir: Path | None):
        self.path = path
        self.rows = ChildRows(jobs)
        self.logs_dir = logs_dir

    def handle(self, event: Event) -> None:
        self.rows.handle(event)
        if isinstance(event, PipelineFinished):
            finished = self.rows.with_outcomes(event)
            root = ET.Element("testsuites", name="pyci")
            root.append(junit_document(self.rows.jobs, finished, self.logs_dir))
            ET.indent(root)
            text = ET.tostring(root, encoding="unicode", xml_declaration=True)
            write_atomically(self.path, text + "\n")
