"""The run's shared checkout, built while `pyci run` loads the pipeline.

Every job of a run gets its sources as a view of one checkout of the repository (snapshot.py);
the first job used to build it: a `git status`, `git clone --shared` and `git checkout`, ~50 ms
of git processes on the critical path of every run. Nothing about that checkout depends on
the pipeline, so `pyci run` starts it on a thread before loading the YAML: the git processes
run on another core while the main thread parses and validates, and the first job finds the
checkout ready like every later one ("Reusing this run's checkout").

It is only a head start. The checkout is keyed by HEAD and the work tree's state, which each
job checks again, so a tree changed meanwhile gets a new checkout as before. Any failure here
is left for the first job to meet and report in its log; the checkout is released (not
removed) when built, so the run's end removes it like any other.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from runner.build import sources, workspace


class _Unlogged:
    """No job owns this checkout yet: its progress messages go nowhere."""

    def notice(self, text: str) -> None:
        pass


def build_shared_checkout(project: Path, builds_root: Path | None = None) -> bool:
    """Build the run's checkout of `project` now; False when there is none to build (no git,
    not a repository, no commit yet)."""
    if not sources.have_git():
        return False
    probe = sources.TreeProbe(project)
    if probe.root is None:
        return False
    state = probe.result()
    if not state.head:
        return False
    root = builds_root or workspace.default_builds_root()
    project_builds = workspace.project_builds_dir(root, project)
    shared, _ = sources.shared_checkout(probe.root, state, project_builds, _Unlogged())
    shared.release()  # kept for the jobs: removed at the end of the run (release_all)
    return True


@contextlib.contextmanager
def checkout_while_loading(project: Path, builds_root: Path | None = None) -> Iterator[None]:
    """Build the checkout on a thread for the duration of the block, and wait for it at the
    end (the run's clean-up must not race with it)."""

    def build() -> None:
        with contextlib.suppress(Exception):  # the first job meets it again, and reports it
            build_shared_checkout(project, builds_root)

    thread = threading.Thread(target=build, name="pyci-early-checkout", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
