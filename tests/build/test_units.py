"""Small pieces of the build on their own: masking, globs, cache keys, dotenv, coverage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.build import globs
from runner.build.artifacts import job_slug, parse_dotenv
from runner.build.cache import cache_key, files_digest, git_blob_id, sanitize_key
from runner.build.joblog import CoverageScanner
from runner.build.masking import MASK, Masker
from runner.core.jobspec import CacheKey
from tests.gitutil import git

# -- masking ---------------------------------------------------------------------------------


def stream(masker: Masker, pieces: list[str]) -> str:
    return "".join(masker.feed(p) for p in pieces) + masker.flush()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_masking_survives_any_chunk_border(size: int):
    text = "a hunter2hunter2 b secret-token c hunter secret-tok"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    out = stream(Masker(["hunter2", "secret-token"]), pieces)
    assert out == f"a {MASK}{MASK} b {MASK} c hunter secret-tok"


def test_masking_prefers_the_longest_secret_and_holds_back_only_prefixes():
    masker = Masker(["abc", "abcdef"])
    assert masker.feed("xx abcdef yy ab") == f"xx {MASK} yy "
    assert masker.feed("c") == MASK
    assert masker.flush() == ""


def test_masker_added_secrets_apply_from_then_on():
    masker = Masker([])
    assert masker.feed("plain") == "plain"
    masker.add(["expanded-secret"])
    assert stream(masker, ["x expanded-", "secret y"]) == f"x {MASK} y"


# -- globs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),
        ("**/*.txt", "a.txt", True),
        ("**/*.txt", "d/e/a.txt", True),
        ("dir/**", "dir", True),
        ("dir/**", "dir/x/y", True),
        ("dir/**/y", "dir/y", True),
        ("dir/**/y", "dir/a/b/y", True),
        ("dir/**/y", "other/y", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[ab].o", "b.o", True),
        ("[!ab].o", "b.o", False),
        ("[^ab].o", "c.o", True),
        ("{bin,obj}/*.o", "obj/x.o", True),
        ("{bin,obj}/*.o", "src/x.o", False),
        ("*", ".hidden", True),
        ("./build/out", "build/out", True),
    ],
)
def test_doublestar_match(pattern: str, path: str, expected: bool):
    assert globs.match(pattern, path) is expected


def test_find_paths_takes_directories_whole_and_never_leaves_the_root(tmp_path: Path):
    for rel in ("out/a.o", "out/sub/b.o", "src/c.o", "src/d.c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "link").symlink_to("out")
    assert globs.find_paths(tmp_path, "out") == ["out", "out/a.o", "out/sub", "out/sub/b.o"]
    assert globs.find_paths(tmp_path, "**/*.o") == ["out/a.o", "out/sub/b.o", "src/c.o"]
    assert globs.find_paths(tmp_path, "link") == ["link"]  # a link is kept, not followed
    assert globs.find_paths(tmp_path, "../") == []
    assert globs.find_paths(tmp_path, "/etc/passwd") == []
    assert globs.find_paths(tmp_path, f"{tmp_path}/src/*.c") == ["src/d.c"]
    assert globs.find_paths(tmp_path, "missing/*") == []


# -- cache keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a%2Fb", "a/b"),
        ("a\\b", "a/b"),
        ("../../etc", "etc"),
        ("a/../../b", "b"),
        ("key  ", "key"),
        ("a/b/  ", "a/b"),
        ("  ", None),
        ("..", None),
    ],
)
def test_cache_key_sanitising(raw: str, expected: str | None):
    assert sanitize_key(raw) == expected


def test_blob_id_is_gits(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"some content\n\x00binary")
    expected = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_blob_id(path) == expected


def test_key_files_follows_gitlabs_algorithm(tmp_path: Path):
    (tmp_path / "Gemfile.lock").write_text("gems\n")
    (tmp_path / "package.json").write_text("{}\n")
    git(tmp_path, "init", "-q")
    blobs = sorted(
        git(tmp_path, "hash-object", name).strip() for name in ("Gemfile.lock", "package.json")
    )
    import hashlib

    digest = hashlib.sha1("-".join(blobs).encode()).hexdigest()
    files = ("Gemfile.lock", "package.json", "missing.txt")
    same = lambda text: text  # noqa: E731
    assert files_digest(tmp_path, files) == digest
    assert cache_key(CacheKey(files=files), 1, tmp_path, same) == f"1-{digest}"
    assert cache_key(CacheKey(files=files, prefix="$P"), 0, tmp_path, str.lower) == f"$p-{digest}"
    assert cache_key(CacheKey(files=("missing",)), 0, tmp_path, same) == "0-default"
    assert cache_key(CacheKey(files=("./Gemfile.lock",)), 0, tmp_path, same) == "0-default"
    assert cache_key(CacheKey(prefix="pre"), 0, tmp_path, same) == "pre-default"
    assert cache_key(CacheKey(), 0, tmp_path, same) == "default"
    assert cache_key(CacheKey("$KEY"), 0, tmp_path, lambda t: "x/../y") == "y"
    # a change of content is a new key
    (tmp_path / "Gemfile.lock").write_text("gems 2\n")
    assert files_digest(tmp_path, files) != digest


# -- dotenv, slugs, coverage ---------------------------------------------------------------


def test_dotenv_parsing():
    pairs, problems = parse_dotenv(
        "A=1\n\n# comment\nB = two words \nC='quoted'\nexport D=\"x\"\nE=a=b\nbad line\n1X=2\n"
    )
    assert pairs == [("A", "1"), ("B", "two words"), ("C", "quoted"), ("D", "x"), ("E", "a=b")]
    assert problems == ["line 8: not a KEY=VALUE line", "line 9: not a KEY=VALUE line"]


def test_job_slugs_are_safe_and_distinct():
    assert job_slug("build") == "build"
    names = ["test 1/2", "test 1-2", "test: [a, b]", "../x"]
    slugs = [job_slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    assert all("/" not in s and " " not in s and not s.startswith(".") for s in slugs)


@pytest.mark.parametrize(
    ("regex", "log", "expected"),
    [
        (r"/Coverage: \d+\.\d+%/", "Coverage: 10.5%\nCoverage: 87.25%\n", "87.25"),
        (r"/TOTAL.+ (\d+%)/", "TOTAL   120   12    90%\n", "90"),
        (r"/lines: (\d+)/i", "LINES: 7", "7"),
        (r"/coverage (\d+)/", "\x1b[32mcoverage 55\x1b[0m\n", "55"),
        (r"/nothing/", "coverage 1\n", None),
    ],
)
def test_coverage_regex(regex: str, log: str, expected: str | None):
    scanner = CoverageScanner(regex)
    for ch in log:  # arrives one character at a time
        scanner.feed(ch)
    scanner.close()
    assert scanner.value == expected


def test_environment_precedence_and_secrets():
    from runner.build.environment import build_environment
    from runner.core.jobspec import Variable

    env = build_environment(
        [
            Variable("CI_PROJECT_DIR", "/builds/group/project"),  # what the planner assumed
            Variable("OUT", "$CI_PROJECT_DIR/out"),
            Variable("SHARED", "job"),
            Variable("TOKEN", "tok-$SHARED", masked=True),
            Variable("CERT", "pem", file=True),
        ],
        [Variable("SHARED", "dotenv")],
        "/real/project",
        "/real",
    )
    assert env.values["CI_PROJECT_DIR"] == "/real/project"
    assert env.values["OUT"] == "/real/project/out"
    assert env.values["SHARED"] == "dotenv"
    assert env.values["RUNNER_TEMP_PROJECT_DIR"] == "/real/project.tmp"
    assert env.file_keys == {"CERT"}
    assert set(env.secrets) == {"tok-$SHARED", "tok-dotenv"}
    assert env.expand("$CI_PROJECT_DIR/x") == "/real/project/x"


def test_environment_without_references_resolves_as_the_full_resolution():
    from runner.build.environment import build_environment
    from runner.core.jobspec import Variable
    from runner.evaluate.variables import resolve

    job = [Variable("A", "1"), Variable("B", "two words"), Variable("A", "3")]
    job.append(Variable("F", "content", file=True))
    env = build_environment(job, [Variable("B", "dotenv")], "/b/p", "/b")
    runner_set = [
        Variable("CI_BUILDS_DIR", "/b"),
        Variable("CI_PROJECT_DIR", "/b/p"),
        Variable("RUNNER_TEMP_PROJECT_DIR", "/b/p.tmp"),
        Variable("CI_JOB_STATUS", "running"),
    ]
    full = resolve([*job, Variable("B", "dotenv"), *runner_set], file_dir="/b/p.tmp")
    assert list(env.values.items()) == list(full.items())
