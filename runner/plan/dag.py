"""The `needs` graph: cycle detection with GitLab's message, and a pipeline-order sort.

GitLab checks cycles over `needs` alone (stages cannot form a cycle, and same-stage needs are the
only way to make one). The check runs on every configured job before rules are evaluated, as
GitLab's linter does, so a cycle is an error even when rules would drop one of its jobs.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence

CYCLE_MESSAGE = "The pipeline has circular dependencies"


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of `needs` as a list of job names (first repeated at the end), or None.

    Needs that point outside `edges` are ignored here; other checks report them.
    """
    sorter = graphlib.TopologicalSorter(
        {job: [need for need in needs if need in edges] for job, needs in edges.items()}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        # graphlib reports the cycle backwards (each node is needed by the one after it)
        return list(reversed(cycle))
    return None


def cycle_message(cycle: Sequence[str]) -> str:
    """GitLab's sentence, followed by the jobs involved so the user can find the loop."""
    return f"{CYCLE_MESSAGE}: {' -> '.join(cycle)}"
