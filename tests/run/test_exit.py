"""The `pyci` command leaves without the interpreter's teardown, but only after everything a
normal exit would finish: non-daemon threads, atexit handlers, buffered output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_threads_atexit_handlers_and_output_finish_before_the_exit_code():
    script = textwrap.dedent(
        """
        import atexit, sys, threading, time
        import runner.cli as cli

        def main():
            returning = threading.Event()
            def late():
                returning.wait()
                # most likely still running once main has returned; the order asserted
                # below holds either way (the events order it, not this sleep)
                time.sleep(0.2)
                print("thread done", flush=True)
            threading.Thread(target=late).start()
            atexit.register(lambda: print("atexit ran"))
            sys.stdout.write("buffered, not flushed\\n")
            returning.set()
            return 3

        cli.main = main
        cli.run()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["buffered, not flushed", "thread done", "atexit ran"]
    assert done.stderr == ""


def test_a_reader_gone_early_is_no_traceback(tmp_path: Path):
    """`pyci list | head`: exit as a program killed by SIGPIPE would, quietly."""
    (tmp_path / ".gitlab-ci.yml").write_text("job:\n  script: [echo hi]\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before pyci writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "runner", "list", "-C", str(tmp_path)],
            cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")
