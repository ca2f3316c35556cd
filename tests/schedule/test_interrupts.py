"""The run's signal handling (runner/schedule/interrupts.py), in a child Python process: the
first signal cancels, the second aborts, and a run stuck after the second still ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from runner.schedule.interrupts import FORCE_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
WATCHDOG_SECONDS = FORCE_GRACE_SECONDS + 10


def run_script(body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        """
        import os, signal, threading
        from runner.schedule.interrupts import cancel_on_signals

        cancel, abort = threading.Event(), threading.Event()
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WATCHDOG_SECONDS,  # a child that outlives it hangs: the test fails
    )


def test_first_signal_cancels_second_aborts_and_the_first_sets_the_exit_code():
    done = run_script(
        """
        with cancel_on_signals(cancel, abort) as interrupts:
            os.kill(os.getpid(), signal.SIGTERM)
            print(cancel.is_set(), abort.is_set(), flush=True)
            os.kill(os.getpid(), signal.SIGINT)
            print(cancel.is_set(), abort.is_set(), interrupts.exit_code, flush=True)
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True False", "True True 143", "True"]
    assert "canceling the pipeline" in done.stderr and "stopping now" in done.stderr


def test_a_run_stuck_after_the_second_signal_still_exits():
    done = run_script(
        """
        with cancel_on_signals(cancel, abort):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait()  # pyci stuck for good: only the watchdog ends this
        """
    )
    assert done.returncode == 130
    assert "exiting now" in done.stderr
