"""Start reading the pipeline in a forked child while this process imports what checks it.

Before the first job, `pyci list` and `pyci run` read git (importing gitpython, ~45 ms of CPU,
then waiting for the `git` processes it starts) and load the YAML (pyyaml, our loader,
includes, `extends`: ~30 ms), and import pydantic and the models (~150 ms). All of it is CPU
under one GIL, so a thread would only overlap the waits; a forked child uses the machine's
other core. It reads the git facts, loads and expands the configuration as
`runner.pipeline.load_expanded` does, and sends both back pickled, while this process imports
pydantic, the models and the planner; when it asks, the answer is usually there already. The
child also looks for installed pydantic plugins, so that pydantic need not (see
`_skip_pydantic_plugin_scan`).

The child is forked first thing in the command, while the process still has a single thread
(a fork copies only the calling thread: a lock held by another one would stay locked in the
child), and leaves with `os._exit` (no atexit handlers, no flushing of the parent's buffers, no
pytest teardown when pyci runs in-process).

Only complete answers are taken from the child. Whatever it could not do (an exception, a
signal, a configuration error, something that does not pickle) is done again in this process,
for the same options, so results, errors and tracebacks are exactly those of a plain
in-process load. The child is reaped when its answer is read, and killed and reaped when the
`with` block ends without it (an error, Ctrl-C): no process outlives the block.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from runner.commands.common import ProjectOptions
    from runner.pipeline import Expanded


class LoadingChild:
    """The git facts and the expanded configuration of `opts`, being read by a forked child."""

    def __init__(self, opts: ProjectOptions) -> None:
        self.opts = opts
        self._pid: int | None = None
        self._answer: tuple[Any, Expanded | None] | None = None
        read_end, write_end = os.pipe()  # not inherited by exec'd programs (O_CLOEXEC)
        # Ctrl-C is held back until the child has its own handler: a KeyboardInterrupt raised
        # in the child before that would unwind through the parent's code.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            _child(opts, read_end, write_end, mask)  # never returns
        os.close(write_end)
        self._pid = pid
        self._read_end: int | None = read_end
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending Ctrl-C raises here
        except BaseException:
            self.close()
            raise

    def facts(self, directory: Path) -> Any:
        """The git facts of `directory` (a `GitFacts`): the child's when it read that
        directory, else read here (also when the child failed: failures show as always)."""
        answer = self._wait()
        if answer is not None and Path(directory) == self.opts.directory:
            return answer[0]
        from runner.evaluate.predefined import read_git_facts

        return read_git_facts(directory)

    def expanded(self, opts: ProjectOptions, facts: Any) -> Expanded | None:
        """The child's expanded configuration when it loaded these options with these facts;
        None when the caller must load it (and meet the error the child met, if any)."""
        answer = self._wait()
        if answer is None or opts != self.opts or facts is not answer[0]:
            return None
        return answer[1]

    def _wait(self) -> tuple[Any, Expanded | None] | None:
        """Read the child's answer to the end; None when it is not complete (the child failed).

        The answer is complete when it unpickles (a cut pickle does not); the child's exit
        status is not waited for, as its exit takes a few ms more: it is reaped here if it is
        gone already, else by `close`."""
        if self._read_end is None:
            return self._answer
        chunks = []
        try:
            while chunk := os.read(self._read_end, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(self._read_end)
            self._read_end = None
        with contextlib.suppress(Exception):  # then read here: see `facts`
            facts, expanded, plugins = pickle.loads(b"".join(chunks))
            self._answer = (facts, pickle.loads(expanded) if expanded else None)
            if plugins is False:
                _skip_pydantic_plugin_scan()
        if self._pid is not None and os.waitpid(self._pid, os.WNOHANG)[0]:
            self._pid = None
        return self._answer

    def close(self) -> None:
        """Kill the child if it still runs (it may be leaving already), and reap it."""
        if self._read_end is not None:
            os.close(self._read_end)
            self._read_end = None
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = None


def _child(opts: ProjectOptions, read_end: int, write_end: int, mask: Any) -> NoReturn:
    # Ctrl-C reaches the whole process group: the child just leaves, at once and without a
    # traceback (the parent kills and reaps it anyway). A handler, unlike SIG_IGN, is not
    # inherited by the `git` processes gitpython starts.
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(1))
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    code = 1
    try:
        os.close(read_end)
        from runner.evaluate.predefined import read_git_facts
        from runner.pipeline import load_expanded

        facts = read_git_facts(opts.directory)
        try:
            expanded = pickle.dumps(load_expanded(opts, facts))
        except Exception:  # a configuration error, or a value that does not pickle
            expanded = None  # the parent loads, and reports it
        payload = pickle.dumps((facts, expanded, _has_pydantic_plugins()))
        with open(write_end, "wb") as out:  # write() of a file object retries partial writes
            out.write(payload)
        code = 0
    except BaseException:  # the parent reads the facts again, and reports what fails
        pass
    finally:
        os._exit(code)


PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def _has_pydantic_plugins() -> bool | None:
    """Whether a distribution installed here offers a pydantic plugin; None if unknown."""
    try:
        from importlib.metadata import entry_points

        return bool(entry_points(group="pydantic"))  # the group pydantic's loader reads
    except Exception:
        return None


def _skip_pydantic_plugin_scan() -> None:
    """Tell pydantic that no plugin is installed, as the child found, before it looks.

    pydantic asks its plugin loader for plugins each time it builds a validator; the loader's
    module imports `importlib.metadata` (~15-25 ms) and scans every installed distribution's
    entry points (~5 ms) the first time. With no plugin installed that answer is empty, so
    a stand-in answering the same is put in the loader's place. Anything else asked of the
    stand-in loads the real loader, which then takes its place for good.
    """
    if PYDANTIC_PLUGIN_LOADER in sys.modules:
        return
    stand_in = types.ModuleType(PYDANTIC_PLUGIN_LOADER, _skip_pydantic_plugin_scan.__doc__)

    def get_plugins(*_args: Any, **_kwargs: Any) -> tuple[()]:  # whatever a later pydantic passes
        return ()

    def real_attribute(name: str) -> Any:
        if name.startswith("__"):  # what repr() and the import system probe: absent
            raise AttributeError(name)
        if sys.modules.get(PYDANTIC_PLUGIN_LOADER) is stand_in:
            del sys.modules[PYDANTIC_PLUGIN_LOADER]
        return getattr(importlib.import_module(PYDANTIC_PLUGIN_LOADER), name)

    stand_in.get_plugins = get_plugins  # type: ignore[attr-defined]
    stand_in.__getattr__ = real_attribute  # type: ignore[attr-defined]
    sys.modules[PYDANTIC_PLUGIN_LOADER] = stand_in


@contextlib.contextmanager
def load_in_background(opts: ProjectOptions | None) -> Iterator[LoadingChild | None]:
    """A child reading git and loading `opts`'s configuration, for `load_pipeline`.

    None (the caller then loads in-process) when there are no options (the command's usage
    error comes later, in its usual place) or when this process already runs other threads:
    forking then is unsafe.
    """
    if opts is None or threading.active_count() > 1 or not hasattr(os, "fork"):
        yield None
        return
    child = LoadingChild(opts)
    try:
        yield child
    finally:
        child.close()
