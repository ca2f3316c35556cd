"""Where an error goes when the job's own log cannot take it (the log is what failed).

The user gets one short line on pyci's stderr, naming the job and the error; the traceback,
which a bug report needs but a terminal does not, goes to a file in the temporary directory
named in that line. If even that file cannot be written, the traceback follows the line.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile


def report_unlogged(job: str, summary: str, details: str) -> None:
    """`summary`: one line; `details`: the traceback (or other text for the fallback file)."""
    where = ""
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="pyci-traceback-", suffix=".txt", delete=False, encoding="utf-8"
        ) as file:
            file.write(f"job {job}\n{details}")
        where = f" (traceback in {file.name})"
    except OSError:
        where = ""
        summary = f"{summary}\n{details.rstrip()}"
    with contextlib.suppress(OSError, ValueError):  # stderr closed too: nothing more to do
        sys.stderr.write(f"pyci: job {job}: {summary}{where}\n")
        sys.stderr.flush()
