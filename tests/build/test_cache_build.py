"""Caches across real builds: save/restore, policies, fallback keys, key:files, concurrency."""

from __future__ import annotations

import tarfile
import threading

from runner.core.jobspec import CacheKey, CacheSpec, Variable
from tests.gitutil import git

from .conftest import Builder


def cache(key: str | CacheKey = "deps", **kwargs) -> CacheSpec:
    kwargs.setdefault("paths", ("deps/",))
    return CacheSpec(key=key if isinstance(key, CacheKey) else CacheKey(key), **kwargs)


def test_cache_is_saved_and_restored_by_the_next_build(builder: Builder, make_job):
    fill = make_job("fill", ("mkdir -p deps && echo v1 > deps/lib",), cache=(cache(),))
    assert builder.run(fill).status == "success"
    assert (builder.project / ".pyci" / "cache" / "deps" / "cache.tar").is_file()
    use = make_job("use", ('test "$(cat deps/lib)" = v1',), cache=(cache(),))
    assert builder.run(use).status == "success", builder.recorder.log("use")
    assert "Successfully extracted cache" in builder.recorder.log("use")


def test_policy_pull_never_saves_and_push_never_restores(builder: Builder, make_job):
    builder.run(make_job("fill", ("mkdir -p deps && echo v1 > deps/lib",), cache=(cache(),)))
    pull = make_job(
        "pull",
        ('test "$(cat deps/lib)" = v1', "echo v2 > deps/lib"),
        cache=(cache(policy="pull"),),
    )
    assert builder.run(pull).status == "success", builder.recorder.log("pull")
    assert "Not uploading cache deps due to policy" in builder.recorder.log("pull")
    push = make_job(
        "push",
        ("test ! -e deps/lib", "mkdir -p deps && echo v3 > deps/lib"),
        cache=(cache(policy="push"),),
    )
    assert builder.run(push).status == "success", builder.recorder.log("push")
    assert "Not downloading cache deps due to policy" in builder.recorder.log("push")
    check = make_job("check", ('test "$(cat deps/lib)" = v3',), cache=(cache(policy="pull"),))
    assert builder.run(check).status == "success"


def test_cache_when_decides_on_failure(builder: Builder, make_job):
    failing = make_job("f", ("mkdir -p deps && echo x > deps/lib", "exit 1"), cache=(cache(),))
    builder.run(failing)
    assert not (builder.project / ".pyci" / "cache" / "deps").exists()
    always = make_job(
        "a", ("mkdir -p deps && echo x > deps/lib", "exit 1"), cache=(cache(when="always"),)
    )
    builder.run(always)
    assert "archive_cache_on_failure" in builder.recorder.sections("a")
    assert (builder.project / ".pyci" / "cache" / "deps" / "cache.tar").exists()


def test_fallback_keys_and_cache_fallback_key(builder: Builder, make_job):
    builder.run(
        make_job("main", ("mkdir -p deps && echo main > deps/lib",), cache=(cache("main"),))
    )
    feature = make_job(
        "feature",
        ('test "$(cat deps/lib)" = main',),
        cache=(cache("feature-$BRANCH", fallback_keys=("nothing", "$BASE")),),
        variables=(Variable("BRANCH", "x"), Variable("BASE", "main")),
    )
    assert builder.run(feature).status == "success", builder.recorder.log("feature")
    log = builder.recorder.log("feature")
    assert log.index("Checking cache for feature-x") < log.index("Checking cache for nothing")
    assert log.index("Checking cache for nothing") < log.index("Checking cache for main")
    via_variable = make_job(
        "v",
        ('test "$(cat deps/lib)" = main',),
        cache=(cache("other", policy="pull"),),
        variables=(Variable("CACHE_FALLBACK_KEY", "main"),),
    )
    assert builder.run(via_variable).status == "success"


def test_key_files_changes_with_the_work_tree(builder: Builder, make_job):
    (builder.project / "deps.lock").write_text("a==1\n")
    git(builder.project, "add", "deps.lock")
    spec = cache(CacheKey(files=("deps.lock",)), policy="pull-push")
    builder.run(make_job("fill", ("mkdir -p deps && echo one > deps/lib",), cache=(spec,)))
    keys = [p.name for p in (builder.project / ".pyci" / "cache").iterdir()]
    assert len(keys) == 1 and keys[0].startswith("0-")
    same = make_job("same", ('test "$(cat deps/lib)" = one',), cache=(spec,))
    assert builder.run(same).status == "success"
    (builder.project / "deps.lock").write_text("a==2\n")  # uncommitted: a new key
    changed = make_job("changed", ("test ! -e deps/lib",), cache=(spec,))
    assert builder.run(changed).status == "success", builder.recorder.log("changed")


def test_lists_of_caches(builder: Builder, make_job):
    caches = (cache("one", paths=("a/",)), cache("two", paths=("b/",)))
    builder.run(make_job("fill", ("mkdir a b; echo 1 > a/f; echo 2 > b/f",), cache=caches))
    use = make_job("use", ('test "$(cat a/f)$(cat b/f)" = 12',), cache=caches)
    assert builder.run(use).status == "success"


def test_concurrent_builds_with_one_key_leave_a_whole_cache(builder: Builder, make_job):
    jobs = [
        make_job(
            f"writer{n}",
            (f"mkdir -p deps; for i in $(seq 1 200); do echo {n} > deps/f$i; done",),
            cache=(cache("shared"),),
        )
        for n in range(3)
    ]
    outcomes = []
    threads = [threading.Thread(target=lambda j=j: outcomes.append(builder.run(j))) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o.status for o in outcomes] == ["success"] * 3
    archive = builder.project / ".pyci" / "cache" / "shared" / "cache.tar"
    with tarfile.open(archive) as tar:
        contents = {
            tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.isfile()  # type: ignore[union-attr]
        }
        assert len([m for m in tar.getmembers() if m.isfile()]) == 200
    assert len(contents) == 1  # every file from the same writer
    assert list(archive.parent.iterdir()) == [archive]  # no temporary archive left over


def test_cache_untracked_takes_what_git_does_not_track(builder: Builder, make_job):
    spec = CacheSpec(key=CacheKey("u"), untracked=True)
    fill = make_job("fill", ("echo made > made.txt", "echo edit >> README"), cache=(spec,))
    assert builder.run(fill).status == "success"
    with tarfile.open(builder.project / ".pyci" / "cache" / "u" / "cache.tar") as tar:
        assert tar.getnames() == ["made.txt"]  # README is tracked, however changed
    use = make_job("use", ('test "$(cat made.txt)" = made',), cache=(spec,))
    assert builder.run(use).status == "success"
