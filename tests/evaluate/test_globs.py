"""GitLab's glob semantics (Ruby File.fnmatch? with PATHNAME | DOTMATCH | EXTGLOB)."""

import pytest

from runner.evaluate.globs import brace_expand, find_matching, glob_match


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),  # * stays inside one segment
        ("*.md", ".hidden.md", True),  # dot files are not special
        ("**/*.js", "a.js", True),  # **/ may match no directory at all
        ("**/*.js", "src/lib/a.js", True),
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**/*.py", "test/src/a.py", False),  # anchored: the whole path must match
        ("docs/**", "docs/index.md", True),
        ("docs/**", "docs/api/index.md", False),  # ** without / is just *
        ("docs/**/*", "docs/api/index.md", True),
        ("{src,lib}/*.c", "lib/a.c", True),
        ("{src,lib}/*.c", "bin/a.c", False),
        ("a/{b,c{d,e}}/f", "a/ce/f", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file/.txt", False),  # ? never matches /
        ("[abc].txt", "b.txt", True),
        ("[!abc].txt", "d.txt", True),
        ("[^abc].txt", "a.txt", False),
        ("[a-c]x", "bx", True),
        ("a[/]b", "a/b", False),  # a class never matches /
        ("Dockerfile", "dockerfile", False),  # case-sensitive
        ("\\*.txt", "*.txt", True),
        ("\\*.txt", "a.txt", False),
        ("x[", "x[", False),  # an unclosed [ never matches, as in Ruby
    ],
)
def test_glob_match(pattern, path, expected):
    assert glob_match(pattern, path) is expected


def test_brace_expansion_is_nested_and_respects_escapes():
    assert brace_expand("a{b,c{d,e}}") == ["ab", "acd", "ace"]
    assert brace_expand("a\\{b,c}") == ["a\\{b,c}"]


def test_find_matching_lists_tracked_and_untracked_files(make_repo):
    repo = make_repo()
    repo.write(".gitignore", "build/\n")
    repo.commit("initial", {"src/main.c": "int main;", "docs/a/b/c.md": "doc"})
    repo.write("src/new.c", "new")  # untracked, not ignored: the next commit would have it
    repo.write("build/out.c", "ignored")
    assert find_matching(repo.root, ["**/*.c"]) == ["src/main.c", "src/new.c"]
    assert find_matching(repo.root, ["docs/**/*.md", "nothing/*"]) == ["docs/a/b/c.md"]
    assert find_matching(repo.root, ["docs/*.md"]) == []


def test_find_matching_without_git_walks_the_directory(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "setup.py").write_text("")
    (tmp_path / ".git").mkdir()  # not a repository, but never part of the project
    (tmp_path / ".git" / "x.py").write_text("")
    assert find_matching(tmp_path, ["**/*.py"]) == ["pkg/setup.py"]
