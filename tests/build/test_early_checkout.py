"""The run's shared checkout built while the pipeline loads: the first job reuses it, a tree
changed meanwhile brings it up to date, and only the checkout kept for the next run is left
once the run ends."""

from __future__ import annotations

from pathlib import Path

from runner.build import snapshot as snapshots
from runner.build.early_checkout import build_shared_checkout, checkout_while_loading
from runner.core import background

from .conftest import Builder


def snapshot_dirs(builder: Builder) -> list[Path]:
    root = builder.builds_root
    return [*root.glob(f"*/{snapshots.SNAPSHOT_PREFIX}*"), *root.glob(f"*{snapshots.KEPT_SUFFIX}")]


def test_the_first_job_reuses_the_early_checkout(builder: Builder, make_job):
    try:
        with checkout_while_loading(builder.project, builder.builds_root):
            pass
        assert len(snapshot_dirs(builder)) == 1
        job = make_job("job", ("cat src/main.txt", "test ! -e scratch-notes.txt"))
        outcome = builder.run(job)
        assert outcome.status == "success"
        log = builder.recorder.log("job")
        assert "Reusing this run's checkout" in log and "Cloning repository" not in log
        assert "uncommitted" in log  # the work tree's change, not only the commit
        assert len(snapshot_dirs(builder)) == 1
    finally:
        background.finish_removals()
        snapshots.release_all()
    assert [p.name.endswith(snapshots.KEPT_SUFFIX) for p in snapshot_dirs(builder)] == [True]


def test_a_tree_changed_after_the_early_checkout_is_brought_up_to_date(builder: Builder, make_job):
    try:
        assert build_shared_checkout(builder.project, builder.builds_root)
        (builder.project / "src" / "main.txt").write_text("changed again\n")
        outcome = builder.run(make_job("job", ("cat src/main.txt",)))
        assert outcome.status == "success"
        log = builder.recorder.log("job")
        assert "Updating the kept checkout" in log and "changed again" in log
    finally:
        background.finish_removals()
        snapshots.release_all()
    assert [p.name.endswith(snapshots.KEPT_SUFFIX) for p in snapshot_dirs(builder)] == [True]


def test_nothing_to_build_outside_a_repository(tmp_path: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file").write_text("x")
    assert build_shared_checkout(plain, tmp_path / "builds") is False
    assert not (tmp_path / "builds").exists()


def test_a_failure_is_left_for_the_job(tmp_path: Path):
    broken = tmp_path / "broken"
    (broken / ".git").mkdir(parents=True)  # a repository git cannot read
    with checkout_while_loading(broken, tmp_path / "builds"):
        pass  # no exception escapes, and the block waited for the thread
    assert not list((tmp_path / "builds").glob(f"*/{snapshots.SNAPSHOT_PREFIX}*"))
