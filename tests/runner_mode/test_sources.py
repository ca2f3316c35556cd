"""get_sources from the server: the project's repository reused between jobs, GIT_STRATEGY,
GIT_DEPTH, GIT_CLEAN_FLAGS; and the cache kept per project between jobs."""

from __future__ import annotations

from tests.gitutil import git
from tests.runner_mode.conftest import Box
from tests.runner_mode.test_end_to_end import assert_reported


def variable(key: str, value: str) -> dict[str, object]:
    return {"key": key, "value": value, "public": True}


def test_fetch_reuses_the_repository_and_clone_starts_afresh(box: Box) -> None:
    first = box.queue("first", ["cat hello.txt"])
    second = box.queue("second", ["cat hello.txt"])
    fresh = box.queue("fresh", ["cat hello.txt"], variables=[variable("GIT_STRATEGY", "clone")])
    run = box.run("--max-builds", "3")
    assert run.returncode == 0, run.stderr
    assert "Initialized empty Git repository" in assert_reported(first, "success")
    assert "Reinitialized existing Git repository" in assert_reported(second, "success")
    assert "Initialized empty Git repository" in assert_reported(fresh, "success")


def test_strategy_none_gives_an_empty_project_dir(box: Box) -> None:
    job = box.queue(
        "none",
        ["ls -A | wc -l", "test ! -e hello.txt"],
        variables=[variable("GIT_STRATEGY", "none")],
    )
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "success")
    assert "Skipping Git repository setup" in trace
    assert not any(r.accepted for r in box.git_server.requests)  # nothing was fetched


def test_git_depth_and_clean_flags(box: Box) -> None:
    job = box.queue(
        "shallow",
        ["cat hello.txt"],
        variables=[variable("GIT_DEPTH", "1"), variable("GIT_CLEAN_FLAGS", "none")],
    )
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "success")
    assert "Fetching changes with git depth set to 1..." in trace
    (repo,) = (box.tmp / "builds" / "repos").glob("*/group/demo")
    assert (repo / ".git" / "shallow").is_file()


def test_the_cache_is_kept_per_project_between_jobs(box: Box) -> None:
    cache = [{"key": "deps", "paths": ["vendor/"], "policy": "pull-push", "when": "on_success"}]
    writer = box.payload("writer", ["mkdir -p vendor", "echo cached-value > vendor/lib.txt"])
    writer["cache"] = cache
    reader = box.payload("reader", ["cat vendor/lib.txt"])
    reader["cache"] = cache
    url = lambda token: box.git_server.repo_url("group/demo", token)  # noqa: E731
    first = box.gitlab.queue_job(writer, repo_url=url)
    second = box.gitlab.queue_job(reader, repo_url=url)
    run = box.run("--max-builds", "2")
    assert run.returncode == 0, run.stderr
    assert_reported(first, "success")
    assert "cached-value" in assert_reported(second, "success")
    assert list((box.tmp / "cache" / "7").iterdir())  # project 7's cache, on the box


def test_submodules_come_from_the_server_with_the_job_token(box: Box) -> None:
    """`GIT_SUBMODULE_STRATEGY=normal`: a submodule with a URL relative to the project's is
    fetched from the same server (with the job's credential, which the server requires) and
    the job sees it."""
    lib = box.tmp / "lib-work"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("from the submodule\n")
    git(lib, "add", ".")
    git(lib, "commit", "-q", "-m", "lib")
    served = box.tmp / "git" / "group"
    git(box.tmp, "clone", "-q", "--bare", str(lib), str(served / "lib.git"))
    work = box.tmp / "work"
    git(work, "-c", "protocol.file.allow=always", "submodule", "add", "-q",
        str(served / "lib.git"), "vendor/lib")  # fmt: skip
    git(work, "config", "-f", ".gitmodules", "submodule.vendor/lib.url", "../lib.git")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "a submodule")
    git(work, "push", "-q", str(served / "demo.git"), "main")
    box.sha = git(work, "rev-parse", "HEAD")
    job = box.queue(
        "with-lib",
        ["cat vendor/lib/lib.txt"],
        variables=[variable("GIT_SUBMODULE_STRATEGY", "normal")],
    )
    run = box.run("--max-builds", "1")
    assert run.returncode == 0, run.stderr
    trace = assert_reported(job, "success")
    assert "from the submodule" in trace
    fetched = [r for r in box.git_server.requests if r.path.startswith("/group/lib.git")]
    assert fetched and all(r.accepted for r in fetched)
    (repo,) = (box.tmp / "builds" / "repos").glob("*/group/demo")
    assert "extraHeader" not in (repo / ".git" / "config").read_text()
