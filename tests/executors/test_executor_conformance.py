"""What every executor must do with a stage command (executors/base.py's contract)."""

from __future__ import annotations

import threading
import time

from conformance_helpers import (
    CollectingLog,
    Prepared,
    hung_since,
    marked_processes,
    new_marker,
    wait_for,
)

from executors.base import StageCommand

NO_CANCEL = threading.Event()


def script(*lines: str) -> str:
    return "\n".join(["set -e", *lines, ""])


def run(p: Prepared, text: str, timeout: float | None = None, env=None, cancel=NO_CANCEL):
    return p.executor.run(StageCommand("step_script", text, timeout, env or {}), p.log, cancel)


def test_exit_codes_are_results(prepared: Prepared):
    assert run(prepared, script("true")).exit_code == 0
    result = run(prepared, script("exit 3"))
    assert (result.exit_code, result.timed_out, result.canceled) == (3, False, False)


def test_output_arrives_in_order_with_stderr(prepared: Prepared):
    run(prepared, script("echo one", "echo two >&2", "printf 'three'"))
    assert prepared.log.text.endswith("one\ntwo\nthree")


def test_a_lot_of_output_arrives_whole(prepared: Prepared):
    log = CollectingLog()
    prepared.executor.run(StageCommand("step_script", script("seq 1 100000")), log, NO_CANCEL)
    assert log.text == "".join(f"{i}\n" for i in range(1, 100001))


def test_environment_and_project_dir(prepared: Prepared):
    project = prepared.executor.project_dir_in_job()
    result = run(
        prepared,
        script(f"cd '{project}'", "cat file.txt", 'echo "value=$STAGE_VALUE"'),
        env={"STAGE_VALUE": "it's here"},
    )
    assert result.exit_code == 0
    assert "from the project\nvalue=it's here\n" in prepared.log.text


def test_stdin_is_empty(prepared: Prepared):
    assert run(prepared, script('test -z "$(cat)"')).exit_code == 0


def test_a_shell_killed_by_a_signal_reports_128_plus_the_signal(prepared: Prepared):
    assert run(prepared, script("kill -KILL $$")).exit_code == 137


def test_timeout_kills_everything_promptly(prepared: Prepared):
    marker = new_marker()
    started = time.monotonic()
    result = run(prepared, script("sleep 300 &", "sleep 301"), 0.5, dict([marker]))
    assert not hung_since(started)
    assert (result.exit_code, result.timed_out) == (None, True)
    assert marked_processes(marker) == []


def test_cancel_returns_promptly_and_kills_everything(prepared: Prepared):
    marker = new_marker()
    cancel = threading.Event()
    watcher = threading.Thread(
        target=lambda: wait_for(lambda: marked_processes(marker), 10) and cancel.set()
    )
    watcher.start()
    started = time.monotonic()
    result = run(prepared, script("sleep 300"), None, dict([marker]), cancel)
    watcher.join()
    assert not hung_since(started)
    assert (result.exit_code, result.canceled) == (None, True)
    assert marked_processes(marker) == []


def test_leftover_background_work_does_not_hold_the_stage(prepared: Prepared):
    marker = new_marker()
    started = time.monotonic()
    result = run(prepared, script("sleep 300 &", "echo bye"), None, dict([marker]))
    assert result.exit_code == 0 and not hung_since(started)
    assert marked_processes(marker) == []


def test_cleanup_is_idempotent(prepared: Prepared):
    prepared.executor.cleanup()
    prepared.executor.cleanup()


class BrokenLog:
    def write(self, text: str) -> None:
        raise RuntimeError("reporter broke")


def test_a_broken_log_neither_hangs_the_stage_nor_goes_unnoticed(prepared: Prepared):
    marker = new_marker()
    command = StageCommand("step_script", script("seq 1 200000"), 10, dict([marker]))
    started = time.monotonic()
    try:
        prepared.executor.run(command, BrokenLog(), NO_CANCEL)
    except RuntimeError as exc:
        assert "reporter broke" in str(exc)
    else:
        raise AssertionError("the log's failure was swallowed")
    assert not hung_since(started)
    assert marked_processes(marker) == []


def test_files_the_job_writes_land_in_the_project_directory(prepared: Prepared):
    project = prepared.executor.project_dir_in_job()
    result = run(prepared, script(f"cd '{project}'", "echo made > output.txt"))
    assert result.exit_code == 0
    assert (prepared.dirs.project_dir / "output.txt").read_text() == "made\n"
