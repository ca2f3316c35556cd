"""What `changes:` compares against locally (see docs/evaluation.md)."""

import pytest

from runner.evaluate.changes import ChangesError, local_changed_files


def test_feature_branch_is_compared_with_the_default_branch(make_repo):
    repo = make_repo()
    repo.commit("base", {"README.md": "r", "src/a.py": "a"})
    repo.repo.git.checkout("-b", "feature")
    repo.commit("work", {"src/b.py": "b"})
    repo.write("src/a.py", "edited, not committed")
    repo.write("notes.txt", "untracked")
    assert local_changed_files(repo.root) == {"src/b.py", "src/a.py", "notes.txt"}


def test_changes_on_main_made_after_branching_do_not_count(make_repo):
    repo = make_repo()
    repo.commit("base", {"a": "1"})
    repo.repo.git.checkout("-b", "feature")
    repo.commit("work", {"feature.txt": "f"})
    repo.repo.git.checkout("main")
    repo.commit("other", {"main-only.txt": "m"})
    repo.repo.git.checkout("feature")
    assert local_changed_files(repo.root) == {"feature.txt"}


def test_renames_count_under_both_names(make_repo):
    repo = make_repo()
    repo.commit("base", {"old.txt": "content"})
    repo.repo.git.checkout("-b", "feature")
    repo.repo.git.mv("old.txt", "new.txt")
    assert local_changed_files(repo.root) == {"old.txt", "new.txt"}


def test_compare_to_is_honoured(make_repo):
    repo = make_repo()
    repo.commit("one", {"a": "1"})
    repo.repo.create_tag("v1")
    repo.commit("two", {"b": "2"})
    repo.commit("three", {"c": "3"})
    assert local_changed_files(repo.root, compare_to="v1") == {"b", "c"}
    assert local_changed_files(repo.root, compare_to="HEAD~1") == {"c"}


def test_invalid_compare_to_is_an_error(make_repo):
    repo = make_repo()
    repo.commit("one", {"a": "1"})
    with pytest.raises(ChangesError, match="compare_to is not a valid ref"):
        local_changed_files(repo.root, compare_to="no-such-branch")


def test_default_branch_without_upstream_has_no_diff(make_repo):
    repo = make_repo()
    repo.commit("one", {"a": "1"})
    assert local_changed_files(repo.root) is None


def test_no_commit_and_no_repository_have_no_diff(make_repo, tmp_path):
    assert local_changed_files(make_repo().root) is None
    outside = tmp_path / "plain"
    outside.mkdir()
    assert local_changed_files(outside) is None
