"""Each job's state directory, made while other jobs of the box end.

The last job to end removes the empty state root (`LockedDir.remove` rmdirs its parent). The
root used to be made with `mkdir(exist_ok=True)` before each job's own directory, which raises
FileExistsError when the root goes between the kernel's EEXIST and pathlib's `is_dir` check:
the job then failed as "an internal error of pyci" before its first line (seen once in a full
run of the suite, with two jobs at a time)."""

from __future__ import annotations

import threading
from pathlib import Path

from runner.runnermode.job import JobSettings, jobs_state_root, lock_job_state_dir

ROUNDS = 1500  # jobs per thread; two threads, each job ending before its next starts


def test_jobs_starting_while_others_end_always_get_a_state_dir(tmp_path: Path) -> None:
    settings = JobSettings(builds_dir=tmp_path, cache_dir=tmp_path / "cache", make_executor=list)
    failures: list[BaseException] = []

    def jobs(first_id: int) -> None:
        for job_id in range(first_id, first_id + ROUNDS):
            try:
                held = lock_job_state_dir(settings, job_id)
            except BaseException as exc:  # what failed the job as an internal error
                failures.append(exc)
                return
            held.remove()  # the last one out also removes the root

    threads = [threading.Thread(target=jobs, args=(n * ROUNDS,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert not jobs_state_root(settings).exists()
