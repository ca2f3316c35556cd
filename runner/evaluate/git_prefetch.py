"""Read the git facts in a forked child while this process loads the pipeline.

Reading the facts costs ~60-90 ms before the first job: importing gitpython (~45 ms of CPU)
and waiting for the `git` processes it starts. Loading the pipeline meanwhile is CPU-bound
(pydantic, the models, YAML), so a thread would only overlap the waits; a forked child uses the
machine's other core for the whole of it. The child is forked first thing in `pyci list` and
`pyci run`, while the process still has a single thread (a fork copies only the calling
thread, so a lock held by another one would stay locked forever in the child); it reads the
facts with the same `read_git_facts`, writes them as JSON to a pipe and leaves with `os._exit`
(no atexit handlers, no flushing of the parent's buffers, no pytest teardown when pyci runs
in-process).

Only a complete answer is taken from the child. When it fails in any way (an exception, a
signal, unreadable output), or the facts are asked for another directory, they are read again
in this process, so errors and tracebacks are exactly those of a plain `read_git_facts`. The
child is reaped when its answer is read, and killed and reaped when the `with` block ends
without it (an error, Ctrl-C): no process outlives the block.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

FactsReader = Callable[[Path], Any]  # a GitFacts from a project directory, as read_git_facts


def read_git_facts(project_dir: Path) -> Any:
    """The facts read in this process (the import of gitpython waits until asked)."""
    from runner.evaluate.predefined import read_git_facts as read

    return read(project_dir)


class GitFactsChild:
    """The facts of one directory, being read by a forked child."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pid: int | None = None
        self._answer: bytes | None = None
        read_end, write_end = os.pipe()  # not inherited by exec'd programs (O_CLOEXEC)
        # Ctrl-C is held back until the child has its own handler: a KeyboardInterrupt raised
        # in the child before that would unwind through the parent's code.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            _child(directory, read_end, write_end, mask)  # never returns
        os.close(write_end)
        self._pid = pid
        self._read_end: int | None = read_end
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending Ctrl-C raises here
        except BaseException:
            self.close()
            raise

    def read(self, project_dir: Path) -> Any:
        """The facts of `project_dir`: the child's answer when it has one for that directory,
        else read here (also when the child failed, so that failures show as they always do)."""
        answer = self._wait()
        if answer is not None and Path(project_dir).resolve() == self.directory:
            from runner.evaluate.predefined import GitFacts

            return GitFacts(**json.loads(answer))
        return read_git_facts(project_dir)

    def _wait(self) -> bytes | None:
        """Read the child's answer to the end, then reap it; None unless it exited with 0."""
        if self._read_end is None:
            return self._answer
        chunks = []
        try:
            while chunk := os.read(self._read_end, 65536):
                chunks.append(chunk)
        finally:
            os.close(self._read_end)
            self._read_end = None
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        if os.waitstatus_to_exitcode(status) == 0:
            self._answer = b"".join(chunks)
        return self._answer

    def close(self) -> None:
        """Kill the child if its answer was never read, and reap it."""
        if self._read_end is not None:
            os.close(self._read_end)
            self._read_end = None
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = None


def _child(directory: Path, read_end: int, write_end: int, mask: set) -> NoReturn:
    # Ctrl-C reaches the whole process group: the child just leaves, at once and without a
    # traceback (the parent kills and reaps it anyway). A handler, unlike SIG_IGN, is not
    # inherited by the `git` processes gitpython starts.
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(1))
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    code = 1
    try:
        os.close(read_end)
        facts = read_git_facts(directory)
        from dataclasses import asdict

        payload = json.dumps(asdict(facts)).encode()
        with open(write_end, "wb") as out:  # write() of a file object retries partial writes
            out.write(payload)
        code = 0
    except BaseException:  # the parent reads the facts again, and reports what fails
        pass
    finally:
        os._exit(code)


@contextlib.contextmanager
def git_facts_in_background(directory: str | Path) -> Iterator[FactsReader]:
    """A reader of git facts whose answer for `directory` is already being read by a child.

    No child is forked (the reader then reads in-process) when `directory` is not a
    directory or when this process already runs other threads: forking then is unsafe.
    """
    path = Path(directory).resolve()
    if not path.is_dir() or threading.active_count() > 1 or not hasattr(os, "fork"):
        yield read_git_facts
        return
    child = GitFactsChild(path)
    try:
        yield child.read
    finally:
        child.close()
