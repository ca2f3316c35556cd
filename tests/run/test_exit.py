"""The `pyci` command exits as any Python program does: non-daemon threads, the `threading`
exit hooks (which end a ThreadPoolExecutor's workers), atexit handlers and buffered output all
finish before the exit code."""

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


def test_a_live_thread_pool_does_not_hang_the_exit():
    """A ThreadPoolExecutor never shut down: its workers end at exit through the `threading`
    exit hooks, which an exit that skipped the interpreter's teardown never ran (pyci hung)."""
    script = textwrap.dedent(
        """
        import concurrent.futures
        import runner.cli as cli

        pools = []  # kept alive, as a module-level pool of a library would be

        def main():
            pools.append(concurrent.futures.ThreadPoolExecutor(max_workers=1))
            pools[0].submit(print, "task ran", flush=True).result()
            return 0

        cli.main = main
        cli.run()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )  # the timeout is the watchdog: a hang fails here
    assert (done.returncode, done.stdout, done.stderr) == (0, "task ran\n", "")


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


KILLED_WHILE_LOADING = """
import ctypes, os, signal, subprocess, sys, time

PR_SET_CHILD_SUBREAPER = 36  # orphans of pyci become this process's children, not init's
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
signal.alarm(60)  # watchdog: a process that never ends fails the test instead of hanging it
pyci = subprocess.Popen([sys.executable, "-m", "runner", "list", "-C", sys.argv[1]],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def loading():  # pydantic is imported when the pipeline is about to be validated
    try:
        with open(f"/proc/{pyci.pid}/maps") as maps:
            return "pydantic_core" in maps.read()
    except OSError:
        return False

while pyci.poll() is None and not loading():
    time.sleep(0.001)
pyci.kill()
pyci.wait()

def adopted():
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\\0")
        except (OSError, ValueError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.append(os.path.basename(argv[0].decode()))
    return found

print(" ".join(adopted()))
while True:  # whatever was left must end on its own
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def test_a_killed_pyci_list_leaves_no_process_running(tmp_path: Path):
    """`kill -9` of `pyci list` while it loads: no loader of pyci's outlives it, and whatever
    else it started (the `git` processes gitpython keeps) ends on its own."""
    (tmp_path / ".gitlab-ci.yml").write_text("job:\n  script: [echo hi]\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_LOADING, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    left = done.stdout.split()
    assert not [name for name in left if name.startswith("python")], left
