"""Real jobs built through the shell executor: stages, sources, artifacts, status, masking."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from executors.factory import ExecutorOptions
from runner.build import snapshot as snapshots
from runner.build import workspace
from runner.build.artifacts import ArtifactStore
from runner.core import background
from runner.core.jobspec import AllowFailure, ArtifactsSpec, CacheKey, CacheSpec, Variable
from tests.gitutil import git

from .conftest import Builder, snapshot


@pytest.fixture(autouse=True)
def nothing_left_in_builds(builder: Builder):
    yield
    snapshots.release_all()  # what pyci does at its exit: the run's shared checkouts go
    root = builder.builds_root
    # what stays is the project's checkout kept for the next run, and nothing else
    found = list(root.iterdir()) if root.exists() else []
    leftovers = [p for p in found if not p.name.endswith(snapshots.KEPT_SUFFIX)]
    assert leftovers == [], f"build directories left behind: {leftovers[:5]}"
    assert len(found) <= 1


def test_sections_run_in_gitlabs_order(builder: Builder, make_job):
    upstream = make_job("up", ("echo x > from-up.txt",), artifacts=ArtifactsSpec(paths=("*.txt",)))
    assert builder.run(upstream).status == "success"
    builder.recorder.events.clear()
    job = make_job(
        "job",
        ("echo hello",),
        after_script=("echo after",),
        cache=(CacheSpec(key=CacheKey("k"), paths=("c",)),),
        artifacts=ArtifactsSpec(paths=("from-up.txt",)),
    )
    outcome = builder.run(job, upstream=("up",))
    assert outcome.status == "success" and outcome.exit_code == 0
    assert builder.recorder.sections() == [
        "prepare_executor",
        "get_sources",
        "restore_cache",
        "download_artifacts",
        "step_script",
        "after_script",
        "archive_cache",
        "upload_artifacts_on_success",
        "cleanup_file_variables",
    ]
    log = builder.recorder.log()
    assert "\x1b[32;1m$ echo hello\x1b[0;m\nhello\n" in log
    assert 'Executing "step_script" stage of the job script' in log
    assert "section_start:" in log and ":step_script\r\x1b[0K" in log
    assert log.endswith("\x1b[32;1mJob succeeded\x1b[0;m\n")


def test_job_sees_the_work_tree_and_never_changes_it(builder: Builder, make_job):
    project = builder.project
    git(project, "add", "README")
    (project / "staged-new.txt").write_text("staged\n")
    git(project, "add", "staged-new.txt")
    before = snapshot(project)
    job = make_job(
        "job",
        (
            'test "$(cat src/main.txt)" = uncommitted',  # uncommitted change is there
            "test -f staged-new.txt",
            "test ! -e scratch-notes.txt",  # untracked files are not
            'test "$CI_PROJECT_DIR" = "$PWD"',
            'case "$CI_PROJECT_DIR" in "$CI_BUILDS_DIR"/*) ;; *) exit 3 ;; esac',
            "git status --short > status.txt; cat status.txt",
            "grep -q 'staged-new.txt' status.txt",
            "rm README; echo changed > src/main.txt; mkdir -p out; echo x > out/new",
            "git add -A && git -c user.name=a -c user.email=a@b commit -qm job",
        ),
    )
    outcome = builder.run(job)
    assert outcome.status == "success", builder.recorder.log()
    assert snapshot(project) == before
    assert not str(builder.builds_root).startswith(str(project))


def test_plain_folder_and_git_strategy_none(builder: Builder, make_job, tmp_path: Path):
    plain = tmp_path / "plain"
    (plain / "d").mkdir(parents=True)
    (plain / "d" / "f").write_text("f\n")
    folder = Builder(plain, builder.builds_root)
    job = make_job(
        "job",
        ("test -f d/f", "echo made > made.txt"),
        artifacts=ArtifactsSpec(untracked=True),
    )
    assert folder.run(job).status == "success", folder.recorder.log()
    assert sorted(p.name for p in ArtifactStore(plain / ".pyci").job_dir("job").iterdir()) == [
        "made.txt"
    ]
    none = make_job("none", ('test -z "$(ls -A)"',), variables=(Variable("GIT_STRATEGY", "none"),))
    assert builder.run(none).status == "success", builder.recorder.log()


def test_artifacts_paths_exclude_untracked_and_copy_back(builder: Builder, make_job):
    job = make_job(
        "build job",
        (
            "mkdir -p out/sub out/tmp",
            "echo a > out/a.bin; echo b > out/sub/b.bin; echo t > out/tmp/t.bin",
            "echo log > out/sub/debug.log; echo u > loose.txt",
        ),
        artifacts=ArtifactsSpec(
            paths=("out/",), exclude=("out/tmp/**", "**/*.log"), untracked=True, name="bin"
        ),
    )
    outcome = builder.run(job, artifacts_to_source=True)
    assert outcome.status == "success", builder.recorder.log()
    store = ArtifactStore(builder.project / ".pyci")
    stored = store.job_dir("build job")
    files = sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file())
    assert files == ["loose.txt", "out/a.bin", "out/sub/b.bin"]
    assert store.metadata("build job")["name"] == "bin"
    assert (builder.project / "out" / "a.bin").read_text() == "a\n"  # --artifacts-to-source
    log = builder.recorder.log()
    assert "out/tmp/**: excluded " in log
    assert "**/*.log: excluded " in log


@pytest.mark.parametrize(
    ("when", "script", "uploaded"),
    [
        ("on_success", "true", True),
        ("on_success", "exit 1", False),
        ("on_failure", "exit 1", True),
        ("on_failure", "true", False),
        ("always", "exit 1", True),
    ],
)
def test_artifacts_when(builder: Builder, make_job, when, script, uploaded):
    job = make_job(
        "job", ("echo x > f.txt", script), artifacts=ArtifactsSpec(paths=("f.txt",), when=when)
    )
    builder.run(job)
    assert (ArtifactStore(builder.project / ".pyci").job_dir("job") / "f.txt").exists() is uploaded
    sections = builder.recorder.sections()
    assert any(s.startswith("upload_artifacts") for s in sections) is uploaded


def test_dotenv_junit_and_files_reach_dependent_jobs(builder: Builder, make_job):
    producer = make_job(
        "producer",
        (
            "echo 'VERSION=1.2.3' > build.env; echo 'OTHER=from-dotenv' >> build.env",
            "echo payload > payload.txt",
            'echo \'<testsuite name="s" tests="1"/>\' > report.xml',
        ),
        artifacts=ArtifactsSpec(
            paths=("payload.txt",), reports=(("dotenv", ("build.env",)), ("junit", ("*.xml",)))
        ),
    )
    assert builder.run(producer).status == "success", builder.recorder.log()
    store = ArtifactStore(builder.project / ".pyci")
    assert [(v.key, v.value) for v in store.dotenv("producer")] == [
        ("VERSION", "1.2.3"),
        ("OTHER", "from-dotenv"),
    ]
    (report,) = store.junit_reports("producer")
    assert "testsuite" in report.read_text()
    consumer = make_job(
        "consumer",
        ('test "$VERSION" = 1.2.3', 'test "$OTHER" = from-dotenv', "test -f payload.txt"),
        variables=(Variable("OTHER", "job-level"),),  # dotenv ranks above job variables
    )
    assert builder.run(consumer, upstream=("producer",)).status == "success"
    alone = make_job("alone", ("test ! -f payload.txt", 'test -z "$VERSION"'))
    assert builder.run(alone).status == "success"


def test_a_new_run_of_a_job_forgets_its_old_artifacts(builder: Builder, make_job):
    spec = ArtifactsSpec(paths=("f.txt",))
    builder.run(make_job("job", ("echo x > f.txt",), artifacts=spec))
    builder.run(make_job("job", ("exit 1",), artifacts=spec))
    assert not ArtifactStore(builder.project / ".pyci").job_dir("job").exists()


def test_masked_values_never_reach_the_log(builder: Builder, make_job):
    job = make_job(
        "job",
        (
            "echo $TOKEN",
            "printf %s s3cr3t-; printf '%s\\n' val",  # split across writes
            "echo $DERIVED",
            "echo s3cr3t-val >&2",
        ),
        after_script=("echo after $TOKEN",),
        variables=(
            Variable("TOKEN", "s3cr3t-val", masked=True),
            Variable("DERIVED", "prefix-$TOKEN"),
        ),
        artifacts=ArtifactsSpec(paths=("s3cr3t-val",)),  # even pyci's own messages
    )
    outcome = builder.run(job)
    assert outcome.status == "success"
    log = builder.recorder.log()
    assert "s3cr3t-val" not in log
    assert log.count("[MASKED]") >= 5


@pytest.mark.parametrize(
    ("script", "timeout", "status"),
    [("true", None, "success"), ("exit 4", None, "failed"), ("sleep 30", 1.0, "timedout")],
)
def test_after_script_sees_ci_job_status(builder: Builder, make_job, script, timeout, status):
    job = make_job(
        "job", (script,), after_script=('echo "status=$CI_JOB_STATUS"',), timeout=timeout
    )
    builder.run(job)
    assert f"status={status}\n" in builder.recorder.log()


def test_after_script_failure_and_timeout_are_warnings(builder: Builder, make_job):
    job = make_job(
        "job",
        ("true",),
        after_script=("echo start", "sleep 30"),
        variables=(Variable("RUNNER_AFTER_SCRIPT_TIMEOUT", "1s"),),
    )
    outcome = builder.run(job)
    assert outcome.status == "success"
    assert outcome.duration < 10
    assert "after_script failed, but job will continue unaffected" in builder.recorder.log()
    failing = make_job("job2", ("true",), after_script=("exit 3",))
    assert builder.run(failing).status == "success"


def test_failure_outcomes(builder: Builder, make_job):
    failed = builder.run(make_job("a", ("exit 3",)))
    assert (failed.status, failed.exit_code, failed.failure_reason) == (
        "failed",
        3,
        "script_failure",
    )
    assert "ERROR: Job failed: exit code 3" in builder.recorder.log("a")
    allowed = builder.run(make_job("b", ("exit 3",), allow_failure=AllowFailure(exit_codes=(3,))))
    assert allowed.allowed_failure
    not_allowed = builder.run(
        make_job("c", ("exit 4",), allow_failure=AllowFailure(exit_codes=(3,)))
    )
    assert not not_allowed.allowed_failure
    crashed = builder.run(make_job("d", ("kill -SEGV $$",)))
    assert (crashed.status, crashed.exit_code) == ("failed", 139)


def test_coverage_is_read_from_the_log(builder: Builder, make_job):
    job = make_job("job", ("echo 'Lines: 71.4%'",), coverage=r"/Lines: \d+\.\d+%/")
    assert builder.run(job).coverage == "71.4"


def test_file_variables_are_files(builder: Builder, make_job):
    job = make_job(
        "job",
        ('test "$(cat "$KUBECONFIG")" = "apiVersion: v1"', 'test "$REF" = "$KUBECONFIG"'),
        variables=(
            Variable("KUBECONFIG", "apiVersion: v1", file=True),
            Variable("REF", "$KUBECONFIG"),
        ),
    )
    assert builder.run(job).status == "success", builder.recorder.log()


def test_artifact_paths_may_use_ci_project_dir(builder: Builder, make_job):
    job = make_job(
        "job",
        ("echo a > abs.txt",),
        artifacts=ArtifactsSpec(paths=("$CI_PROJECT_DIR/abs.txt", "/etc/hostname")),
    )
    assert builder.run(job).status == "success"
    stored = ArtifactStore(builder.project / ".pyci").job_dir("job")
    assert sorted(p.name for p in stored.iterdir()) == ["abs.txt"]


def test_a_broken_environment_is_a_system_failure(builder: Builder, make_job):
    outcome = builder.run(make_job("job"), options=ExecutorOptions(shell="no-such-shell-here"))
    assert (outcome.status, outcome.failure_reason) == ("failed", "runner_system_failure")
    assert (
        "Job failed (system failure): shell no-such-shell-here not found" in builder.recorder.log()
    )


def test_a_repository_that_cannot_be_checked_out_is_a_system_failure(builder: Builder, make_job):
    blob = git(builder.project, "rev-parse", "HEAD:README").strip()
    (builder.project / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    outcome = builder.run(make_job("job", ("echo never-runs",)))
    assert (outcome.status, outcome.failure_reason) == ("failed", "runner_system_failure")
    assert "never-runs\n" not in builder.recorder.log()


def test_ci_job_status_is_running_during_the_script(builder: Builder, make_job):
    job = make_job("job", ('test "$CI_JOB_STATUS" = running',))
    assert builder.run(job).status == "success"


def test_an_unusable_builds_directory_is_a_system_failure(builder: Builder, make_job, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    outcome = builder.run(make_job("job"), builds_root=blocker / "builds")
    assert (outcome.status, outcome.failure_reason) == ("failed", "runner_system_failure")


def test_jobs_run_under_plain_sh_too(builder: Builder, make_job):
    job = make_job(
        "job",
        ('test -z "$BASH_VERSION"', 'test "$(cat "$CONF")" = conf', "cd src && cat main.txt"),
        after_script=('echo "after=$CI_JOB_STATUS"',),
        variables=(Variable("CONF", "conf", file=True),),
    )
    outcome = builder.run(job, options=ExecutorOptions(shell="sh"))
    assert outcome.status == "success", builder.recorder.log()
    log = builder.recorder.log()
    assert "Using Shell (sh) executor..." in log
    assert "uncommitted\n" in log and "after=success\n" in log


def test_git_checkout_false_leaves_only_the_repository(builder: Builder, make_job):
    job = make_job(
        "job",
        ("test -d .git", "test ! -e README", "git cat-file -e HEAD:README"),
        variables=(Variable("GIT_CHECKOUT", "false"),),
    )
    assert builder.run(job).status == "success", builder.recorder.log()


def _with_submodules(project: Path, tmp_path: Path) -> None:
    """`lib` (with its own submodule `inner`) as the project's submodule `vendor/lib`,
    checked out in the project as `git submodule update --init --recursive` leaves it."""
    inner = tmp_path / "inner"
    inner.mkdir()
    git(inner, "init", "-q", "-b", "main")
    (inner / "inner.txt").write_text("from inner\n")
    git(inner, "add", ".")
    git(inner, "commit", "-q", "-m", "inner")
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("from lib\n")
    git(lib, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner), "inner")
    git(lib, "add", ".")
    git(lib, "commit", "-q", "-m", "lib")
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib),
        "vendor/lib")  # fmt: skip
    git(project, "-c", "protocol.file.allow=always", "submodule", "update", "--init",
        "--recursive", "-q")  # fmt: skip
    git(project, "commit", "-q", "-m", "with a submodule")


@pytest.mark.parametrize(
    ("strategy", "script"),
    [
        ("none", ('test -z "$(ls -A vendor/lib)"',)),
        ("normal", ("cat vendor/lib/lib.txt", 'test -z "$(ls -A vendor/lib/inner)"')),
        ("recursive", ("cat vendor/lib/lib.txt", "cat vendor/lib/inner/inner.txt")),
    ],
)
def test_submodules_follow_the_strategy(builder, make_job, tmp_path, strategy, script):
    # gitlab-runner's `git submodule update --init [--recursive]`, from the checkout pyci copies
    _with_submodules(builder.project, tmp_path)
    variables = (Variable("GIT_SUBMODULE_STRATEGY", strategy),)
    outcome = builder.run(make_job("job", script, variables=variables))
    assert outcome.status == "success", builder.recorder.log()
    if strategy == "none":
        assert "Skipping Git submodules setup" in builder.recorder.log()
    else:
        assert "Submodule vendor/lib at " in builder.recorder.log()


def test_a_submodule_not_checked_out_is_said_and_left_empty(builder, make_job, tmp_path):
    _with_submodules(builder.project, tmp_path)
    git(builder.project, "submodule", "deinit", "-q", "--force", "vendor/lib")
    job = make_job(
        "job",
        ('test -z "$(ls -A vendor/lib)"',),
        variables=(Variable("GIT_SUBMODULE_STRATEGY", "normal"),),
    )
    assert builder.run(job).status == "success", builder.recorder.log()
    assert "Submodule vendor/lib: not checked out in" in builder.recorder.log()


def test_job_log_golden(builder: Builder, make_job):
    """The whole log of a job, in GitLab's trace format (times, paths and ids normalised)."""
    job = make_job(
        "golden job",
        ("echo hello", "mkdir -p out && echo 1 > out/a"),
        before_script=("echo before",),
        after_script=("echo after",),
        cache=(CacheSpec(key=CacheKey("gold"), paths=("out/",)),),
        artifacts=ArtifactsSpec(paths=("out/",)),
    )
    assert builder.run(job).status == "success"
    log = builder.recorder.log()
    head = git(builder.project, "rev-parse", "HEAD").strip()
    log = re.sub(r"section_(start|end):\d+:", r"section_\1:<TIME>:", log)
    log = log.replace(str(builder.project), "<PROJECT>").replace(head[:8], "<HEAD>")
    log = re.sub(r"/golden-job-[0-9a-f]{8}", "/golden-job-<HASH>", log)
    path = Path(__file__).parent / "golden" / "job_log.txt"
    if os.environ.get("PYCI_UPDATE_GOLDEN") == "1":
        path.write_bytes(log.encode())
    assert log == path.read_bytes().decode()  # bytes: the trace's \r must survive


def test_runner_script_timeout_limits_the_script_alone(builder: Builder, make_job):
    job = make_job(
        "job",
        ("sleep 30",),
        after_script=('echo "status=$CI_JOB_STATUS"',),
        variables=(Variable("RUNNER_SCRIPT_TIMEOUT", "1s"),),
    )
    outcome = builder.run(job)
    assert (outcome.status, outcome.failure_reason) == ("failed", "job_execution_timeout")
    assert "status=timedout\n" in builder.recorder.log()
    assert outcome.duration < 8


def shared_checkouts(builder: Builder) -> list[Path]:
    background.finish_removals()
    root = builder.builds_root
    found = [*root.glob(f"*/{snapshots.SNAPSHOT_PREFIX}*"), *root.glob(f"*{snapshots.KEPT_SUFFIX}")]
    return sorted(found)


@pytest.mark.parametrize("view", ["auto", "copy"])
def test_jobs_share_one_checkout_yet_each_has_its_own_files(
    builder: Builder, make_job, monkeypatch: pytest.MonkeyPatch, view: str
):
    monkeypatch.setenv("PYCI_SOURCES_VIEW", view)
    writer = make_job(
        "writer",
        (
            "echo job > src/main.txt; rm README; echo new > made.txt",
            "git add -A && git -c user.name=a -c user.email=a@b commit -qm job",
        ),
    )
    reader = make_job(
        "reader",
        (
            'test "$(cat src/main.txt)" = uncommitted',
            "test -f README && test ! -e made.txt",
            'test "$(git log -1 --format=%s)" = init',
        ),
    )
    assert builder.run(writer).status == "success", builder.recorder.log()
    assert builder.run(reader).status == "success", builder.recorder.log()
    assert len(shared_checkouts(builder)) == 1
    expected = "overlay" if view == "auto" and os.geteuid() == 0 else "copy of the checkout"
    assert expected in builder.recorder.log("reader")
    assert "Reusing this run's checkout" in builder.recorder.log("reader")


def test_a_change_to_the_work_tree_between_jobs_is_seen(builder: Builder, make_job):
    job = make_job("job", ('test "$(cat src/main.txt)" = "$EXPECTED"',))

    def with_expected(text: str):
        return replace(job, variables=(Variable("EXPECTED", text),))

    for _ in range(3):  # each job asks git again
        assert builder.run(with_expected("uncommitted")).status == "success"
    before = shared_checkouts(builder)  # (waits until the jobs let go of the checkout)
    (builder.project / "src" / "main.txt").write_text("edited again\n")  # same status line
    assert builder.run(with_expected("edited again")).status == "success", builder.recorder.log()
    git(builder.project, "add", "src/main.txt")
    git(builder.project, "commit", "-q", "-m", "second")
    assert builder.run(with_expected("edited again")).status == "success"
    assert builder.run(with_expected("edited again")).status == "success"
    background.finish_removals()  # no job reads the checkout now: it is updated in place
    (builder.project / "src" / "main.txt").unlink()
    assert builder.run(make_job("gone", ("test ! -e src/main.txt",))).status == "success"
    after = shared_checkouts(builder)
    # one checkout kept and brought up to date; one made while a job still read it is gone
    assert len(before) == len(after) == 1 and before[0].name.endswith(snapshots.KEPT_SUFFIX)


def test_a_change_written_through_a_hard_link_outside_the_tree_is_seen(
    builder: Builder, make_job, tmp_path: Path
):
    """A file watcher on the tree's directories never hears of it (inotify reports a write
    to the directory of the name written through); `git status` does, on every job."""
    job = make_job("job", ('test "$(cat README)" = "$EXPECTED"',))

    def with_expected(text: str):
        return replace(job, variables=(Variable("EXPECTED", text),))

    outside = tmp_path / "outside.txt"
    os.link(builder.project / "README", outside)  # a committed file, unchanged so far
    for _ in range(3):
        assert builder.run(with_expected("readme")).status == "success"
    outside.write_text("written through the link\n")
    result = builder.run(with_expected("written through the link"))
    assert result.status == "success", builder.recorder.log()


def test_pycis_own_state_dir_is_no_change_even_where_the_repository_tracks_it(
    builder: Builder, make_job
):
    """A repository that committed `.pyci/`: what pyci writes there between jobs (logs,
    artifacts) does not make the next job a new checkout."""
    state = builder.project / ".pyci"
    state.mkdir()
    (state / "kept.txt").write_text("committed\n")
    git(builder.project, "add", "-f", ".pyci/kept.txt")
    git(builder.project, "commit", "-q", "-m", "track .pyci")
    assert builder.run(make_job("first", ("true",))).status == "success"
    (state / "kept.txt").write_text("written by pyci between jobs\n")
    assert builder.run(make_job("second", ("true",))).status == "success"
    assert "Reusing this run's checkout" in builder.recorder.log("second")


def test_the_next_run_updates_the_kept_checkout_to_what_the_tree_is_then(
    builder: Builder, make_job
):
    """Run 1 had an uncommitted change and a new staged file; before run 2 the user commits
    another file and drops both: run 2 updates the kept checkout (no clone) and sees exactly
    the tree as it is then."""
    (builder.project / "staged.txt").write_text("staged\n")
    git(builder.project, "add", "staged.txt")
    checks = (
        'test "$(cat src/main.txt)" = "$MAIN"',
        'if [ -e staged.txt ]; then seen=true; else seen=false; fi; test "$seen" = "$STAGED"',
    )
    first = make_job(
        "first", checks, variables=(Variable("MAIN", "uncommitted"), Variable("STAGED", "true"))
    )
    assert builder.run(first).status == "success", builder.recorder.log("first")
    assert "Cloning repository" in builder.recorder.log("first")
    snapshots.release_all()  # the end of run 1

    git(builder.project, "rm", "-q", "--cached", "staged.txt")
    (builder.project / "staged.txt").unlink()
    git(builder.project, "checkout", "-q", "--", "src/main.txt")
    (builder.project / "README").write_text("second commit\n")
    git(builder.project, "commit", "-q", "-am", "second")
    second = make_job(
        "second",
        (*checks, 'test "$(cat README)" = "second commit"'),
        variables=(Variable("MAIN", "committed"), Variable("STAGED", "false")),
    )
    assert builder.run(second).status == "success", builder.recorder.log("second")
    log = builder.recorder.log("second")
    assert "Updating the kept checkout" in log and "Cloning repository" not in log
    assert len(shared_checkouts(builder)) == 1


def test_a_kept_checkout_another_run_holds_is_left_alone(builder: Builder, make_job):
    """Two pyci runs of one project at once: the second builds a checkout of its own, removed
    at its end, and never touches the one the first run's jobs read."""
    project_builds = workspace.project_builds_dir(builder.builds_root, builder.project)
    other_run = snapshots.lock_kept_dir(project_builds)  # held as another run would
    assert other_run is not None
    try:
        assert builder.run(make_job("job", ("cat src/main.txt",))).status == "success"
        log = builder.recorder.log("job")
        assert "Cloning repository" in log and "Updating the kept checkout" not in log
        fresh = [p for p in shared_checkouts(builder) if p.parent == project_builds]
        assert len(fresh) == 1 and fresh[0].name.startswith(snapshots.SNAPSHOT_PREFIX)
        assert not (other_run.path / "tree").exists()
        snapshots.release_all()
        assert not fresh[0].exists()
    finally:
        other_run.unlock()


def test_upstream_jobs_without_artifacts_are_not_mentioned(builder: Builder, make_job):
    assert builder.run(make_job("quiet", ("true",))).status == "success"
    builder.recorder.events.clear()
    assert builder.run(make_job("job", ("true",)), upstream=("quiet",)).status == "success"
    assert "download_artifacts" not in builder.recorder.sections()
    assert "quiet" not in builder.recorder.log()
