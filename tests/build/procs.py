"""Find the processes a test job started: every job exports a unique marker variable."""

from __future__ import annotations

import uuid

import processes

from runner.core.jobspec import Variable

wait_for = processes.wait_for
hung_since = processes.hung_since


def new_marker() -> Variable:
    return Variable("PYCI_TEST_MARKER", uuid.uuid4().hex)


def marked_processes(marker: Variable) -> list[int]:
    """Live (non-zombie) processes whose environment holds the marker."""
    return processes.marked_processes(marker.key, marker.value)
