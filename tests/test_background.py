"""Background clean-up: everything submitted is done, and the thread
ends once nothing is pending (pyci may be used in-process; no thread may outlive the work)."""

import shutil
import threading
import time

from runner.core import background


def remover_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pyci-remover"]


def test_removals_run_and_the_thread_ends(tmp_path):
    dirs = [tmp_path / f"job{i}" for i in range(5)]
    for d in dirs:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "file").write_text("x")
        background.remove_later(lambda d=d: shutil.rmtree(d))
    background.finish_removals()
    assert not any(d.exists() for d in dirs)
    deadline = time.monotonic() + 5
    while remover_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert remover_threads() == []
    # and a later submission starts a thread again
    later = tmp_path / "later"
    later.mkdir()
    background.remove_later(lambda: later.rmdir())
    background.finish_removals()
    assert not later.exists()


def test_a_removal_raising_systemexit_does_not_stop_later_ones(tmp_path, capsys):
    done = threading.Event()

    def exits() -> None:
        raise SystemExit(3)

    background.remove_later(exits)
    background.remove_later(done.set)
    finished = threading.Thread(target=background.finish_removals, daemon=True)
    finished.start()
    finished.join(timeout=30)  # a watchdog: before the fix this waited for ever
    assert not finished.is_alive() and done.is_set()
    assert "SystemExit" in capsys.readouterr().err
