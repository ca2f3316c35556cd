"""Hostile configurations end quickly, in little memory, with one clear line.

Each case is a repository an attacker could hand to `pyci validate` (or `pyci list`): an alias
bomb, a doubling chain of `!reference`s, a backtracking pattern, deep nesting, a huge number, a
symlink loop, a huge file. pyci runs as a real command in a child process, under a launcher
that limits its CPU time to 2 s (the kernel kills it past that, whatever else the machine is
doing) and reports the peak memory of pyci and the processes it started (ru_maxrss of its
children). A wall-clock watchdog catches a child that would hang without using CPU.

The bounds come from GitLab (limits.py): each input is refused as GitLab refuses it, in one
line, or (the pattern) evaluated correctly in linear time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CPU_SECONDS = 2
MAX_RSS_MB = 200
WATCHDOG_SECONDS = 60  # only for a child that waits instead of computing; CPU is bounded above

# Runs the command after `--` with its CPU time and address space limited, then prints what it
# and the processes it started used.
LAUNCHER = """
import json, resource, subprocess, sys
cpu = int(sys.argv[1])
def limit():
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a runaway stops at 1 GiB
done = subprocess.run(sys.argv[3:], preexec_fn=limit, capture_output=True, text=True)
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "max_rss_kb": used.ru_maxrss, "cpu": used.ru_utime + used.ru_stime}))
"""


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    max_rss_mb: float
    cpu_seconds: float


def run_pyci(directory: Path, *args: str) -> Outcome:
    pyci = [sys.executable, "-m", "runner.cli", *args]
    command = [sys.executable, "-c", LAUNCHER, str(CPU_SECONDS), "--", *pyci]
    done = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=WATCHDOG_SECONDS
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return Outcome(
        report["code"],
        report["stdout"],
        report["stderr"],
        report["max_rss_kb"] / 1024,
        report["cpu"],
    )


def assert_bounded(outcome: Outcome) -> None:
    assert outcome.code >= 0, f"pyci was killed by signal {-outcome.code} (CPU or memory limit)"
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.max_rss_mb < MAX_RSS_MB, f"{outcome.max_rss_mb:.0f} MB"


def assert_refused(outcome: Outcome, *phrases: str) -> str:
    """Bounded, exit 1 or 2, and exactly one line on stderr holding every phrase."""
    assert_bounded(outcome)
    assert outcome.code in (1, 2), (outcome.code, outcome.stdout, outcome.stderr)
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    (line,) = lines
    assert line.startswith("error: ")
    for phrase in phrases:
        assert phrase in line
    return line


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


JOB = "job:\n  script: [echo]\n"


def alias_bomb() -> str:
    """457 bytes: nine levels of nine aliases each, 9**9 (387 million) strings once expanded."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    lines.append("job: {script: [echo], variables: {X: *a8}}")
    return "\n".join(lines) + "\n"


def reference_doubling_chain(length: int = 40) -> str:
    """~2 KB: each template holds two references to the previous one, 2**40 items in the end."""
    lines = [".r0: {s: [x, x]}"]
    for step in range(1, length):
        previous = f"!reference [.r{step - 1}, s]"
        lines.append(f".r{step}: {{s: [{previous}, {previous}]}}")
    lines.append(f"job: {{script: !reference [.r{length - 1}, s]}}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    text = alias_bomb()
    assert len(text) < 500
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, ".gitlab-ci.yml:", "The parsed YAML is too big")


def test_merge_keys_count_what_they_merge(tmp_path: Path) -> None:
    lines = ['m0: &m0 {a: "x", b: "x", c: "x", d: "x", e: "x", f: "x", g: "x", h: "x"}']
    for level in range(1, 10):
        merged = ", ".join(f"k{n}: *m{level - 1}" for n in range(8))
        lines.append(f"m{level}: &m{level} {{<<: *m{level - 1}, {merged}}}")
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": "\n".join(lines) + "\n" + JOB}), "list")
    assert_refused(outcome, "The parsed YAML is too big")


def test_an_alias_inside_what_it_names_is_too_big_as_in_gitlab(tmp_path: Path) -> None:
    files = {".gitlab-ci.yml": "a: &x\n  b: *x\n" + JOB}
    outcome = run_pyci(write(tmp_path, files), "validate")
    assert_refused(outcome, ".gitlab-ci.yml:2:6:", "The parsed YAML is too big", "*x")


def test_a_flood_of_tiny_items_stops_at_the_size_limit(tmp_path: Path) -> None:
    text = "x: [" + ",".join(["1a"] * 650_000) + "]\n" + JOB  # 1.9 MB, under the file limit
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "The parsed YAML is too big", "2,097,152 bytes")


def test_a_doubling_chain_of_references_stops_at_the_copy_limit(tmp_path: Path) -> None:
    text = reference_doubling_chain()
    assert len(text) < 2500
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "!reference [", "makes the configuration too big")


def test_a_long_chain_of_references_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    # written backwards, so that resolving .r0 needs .r1, which needs .r2, and so on
    lines = [f".r{n}: {{s: !reference [.r{n + 1}, s]}}" for n in range(400)]
    text = "\n".join(lines) + "\n.r400: {s: [echo]}\njob: {script: !reference [.r0, s]}\n"
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "more than 100 references inside one another")


def test_references_nesting_lists_ever_deeper_are_one_line(tmp_path: Path) -> None:
    lines = [f".r{n}: {{s: [[!reference [.r{n + 1}, s]]]}}" for n in range(90)]
    text = "\n".join(lines) + "\n.r90: {s: [echo]}\njob: {script: !reference [.r0, s]}\n"
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "nests more than 100 levels deep once references are inserted")


def test_a_backtracking_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    # /(a+)+$/ on 40 a's and a '!' takes 2**40 steps in a backtracking engine; RE2 is linear.
    text = (
        f"variables:\n  V: {'a' * 40}!\n"
        "never:\n  script: [echo]\n  rules:\n    - if: '$V =~ /(a+)+$/'\n"
        "always:\n  script: [echo]\n  rules:\n    - if: '$V =~ /^(a+)+!$/'\n"
    )
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "list")
    assert_bounded(outcome)
    assert outcome.code == 0, outcome.stderr
    assert "always" in outcome.stdout
    assert "never" not in outcome.stdout


def test_a_backtracking_input_regex_runs_in_linear_time(tmp_path: Path) -> None:
    files = {
        ".gitlab-ci.yml": "include:\n  - local: tpl.yml\n    inputs:\n      name: "
        + "a" * 40
        + "!\n",
        "tpl.yml": "spec:\n  inputs:\n    name:\n      regex: ^(a+)+$\n---\n" + JOB,
    }
    outcome = run_pyci(write(tmp_path, files), "validate")
    assert_refused(outcome, "`name` input: provided value does not match required RegEx pattern")


@pytest.mark.parametrize("depth", [150, 1000, 5000])
def test_deep_brackets_are_one_line_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    text = "job:\n  script: [echo]\n  variables: " + "[" * depth + "]" * depth + "\n"
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    # up to libyaml's own limit (psych's too) GitLab's depth limit speaks; past it, libyaml
    line = assert_refused(outcome, ".gitlab-ci.yml:3:")
    assert "The parsed YAML is too big (nested more than 100 levels deep)" in line or (
        "exceeded maximum nesting depth" in line and depth >= 1000
    )


def test_deep_block_mappings_are_one_line(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * level}k{level}:\n" for level in range(300)) + JOB
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "The parsed YAML is too big (nested more than 100 levels deep)")


@pytest.mark.parametrize(
    "number",
    ["9" * 4400, "-" + "1" * 5000, "0x" + "f" * 4000, "0" + "7" * 6000, "1" * 4400 + ":30"],
)
def test_a_huge_integer_is_one_line(tmp_path: Path, number: str) -> None:
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": f"{JOB}  timeout: {number}\n"}), "list")
    assert_refused(outcome, ".gitlab-ci.yml:3:12:", "digits is more than pyci can read")


def test_a_huge_explicit_integer_is_one_line(tmp_path: Path) -> None:
    text = f"{JOB}  timeout: !!int {'9' * 4400}\n"
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "digits is more than pyci can read")


def test_a_self_referencing_symlink_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".gitlab-ci.yml").symlink_to(".gitlab-ci.yml")
    for command in ("validate", "list"):
        assert_refused(run_pyci(tmp_path, command), "a symbolic link loops")
    assert_refused(run_pyci(tmp_path, "validate", "--shape-only"), "a symbolic link loops")


def test_an_included_symlink_loop_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, {".gitlab-ci.yml": "include: loop.yml\n" + JOB})
    (tmp_path / "loop.yml").symlink_to("loop.yml")
    outcome = run_pyci(tmp_path, "validate")
    assert_refused(outcome, ".gitlab-ci.yml:1:1:", "`loop.yml`", "a symbolic link that loops")


def test_a_named_pipe_is_never_opened_for_a_read_that_would_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".gitlab-ci.yml")
    assert_refused(run_pyci(tmp_path, "validate"), ".gitlab-ci.yml: not a regular file")
    write(tmp_path / "sub", {".gitlab-ci.yml": "include: pipe.yml\n" + JOB})
    os.mkfifo(tmp_path / "sub" / "pipe.yml")
    assert_refused(run_pyci(tmp_path / "sub", "validate"), "Local file `pipe.yml` does not exist!")


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    line = "    - echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
    text = "job:\n  script:\n" + line * (14_000_000 // len(line))
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "the file is too big", "at most 2,097,152")


def test_a_huge_included_file_is_refused_unread(tmp_path: Path) -> None:
    files = {".gitlab-ci.yml": "include: big.yml\n" + JOB, "big.yml": "# " + "x" * 3_000_000}
    outcome = run_pyci(write(tmp_path, files), "validate")
    assert_refused(outcome, ".gitlab-ci.yml:1:1: `big.yml`: the file is too big")


def test_a_big_but_honest_file_is_still_read(tmp_path: Path) -> None:
    """The bounds leave room: 400 jobs of 20 script lines (430 KB) load as before."""
    jobs = "".join(
        f"job{n}:\n  script:\n" + "".join(f"    - echo step {s} of job {n}\n" for s in range(20))
        for n in range(400)
    )
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": jobs}), "validate")
    assert_bounded(outcome)
    assert outcome.code == 0, outcome.stderr
    assert "valid (400 jobs)" in outcome.stdout


HEADER = "spec:\n  inputs:\n    x:\n      default: " + "y" * 1000 + "\n---\n"


def test_an_interpolation_bomb_stops_at_the_file_limit(tmp_path: Path) -> None:
    # 100,000 copies of one short block, each replaced by 1,000 bytes: 100 MB of text
    text = HEADER + "job:\n  script: [echo]\n  variables:\n    V: " + "$[[ inputs.x ]]" * 100_000
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text + "\n"}), "validate")
    assert_refused(outcome, "config too large: more than 2,097,152 bytes once interpolated")


def test_a_line_of_unclosed_blocks_is_scanned_in_linear_time(tmp_path: Path) -> None:
    text = HEADER + JOB + "x: " + "$[[ " * 200_000 + "\n"  # 10,000 took 29 s with Python's re
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "jobs:x config should be a hash")


def test_too_many_distinct_blocks_is_gitlabs_error(tmp_path: Path) -> None:
    blocks = " ".join(f"$[[ inputs.x | truncate({n},1) ]]" for n in range(10_001))
    text = HEADER + JOB + f"  variables:\n    V: {blocks}\n"
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, "too many interpolation blocks")


def test_a_repeated_wrong_block_is_one_line(tmp_path: Path) -> None:
    text = HEADER + JOB + "  variables:\n    V: " + "$[[ inputs.nope ]]" * 50_000 + "\n"
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, ".gitlab-ci.yml:9:8:", "unknown interpolation key: `nope`")


def test_a_backtracking_include_wildcard_runs_in_linear_time(tmp_path: Path) -> None:
    # twelve `**a` did not finish in ten minutes with Python's re on this one file name
    files = {".gitlab-ci.yml": f"include: '{'**a' * 12}**c.yml'\n" + JOB, "a" * 40 + ".yml": ""}
    outcome = run_pyci(write(tmp_path, files), "validate")
    assert_bounded(outcome)
    assert outcome.code == 0, outcome.stderr


def test_backtracking_globs_in_rules_exists_run_in_linear_time(tmp_path: Path) -> None:
    # 14 `*a` took 11 s with Python's re on one 30-character name; `**/` x 12 did not end
    rules = f"    - exists: ['{'*a' * 14}*c', '{'**/' * 12}c']\n"
    files = {
        ".gitlab-ci.yml": "never:\n  script: [echo]\n  rules:\n" + rules + JOB,
        "a" * 30: "",
        "/".join(["a"] * 25) + "/b": "",
    }
    outcome = run_pyci(write(tmp_path, files), "list")
    assert_bounded(outcome)
    assert outcome.code == 0, outcome.stderr
    assert "job" in outcome.stdout and "never" not in outcome.stdout


def template_bomb(keyword: str, jobs: int = 3000, keys: int = 800) -> str:
    """A ~170 KB file: one template of 1,600 keys and lines, given to 3,000 jobs by `extends`
    (keyword `extends`) or by `default:` (keyword `default`): 4.8 million entries once
    applied, which GitLab too would compose one by one."""
    body = ["  variables:"] + [f"    V{i}: value-{i}" for i in range(keys)]
    body += ["  before_script:"] + [f"    - echo line {i}" for i in range(keys)]
    if keyword == "extends":
        head = [".template:", *body]
        tail = [f"job{n}:\n  extends: .template\n  script: [echo]" for n in range(jobs)]
    else:
        head = ["default:", *body[keys + 1 :]]  # before_script: default takes no variables
        tail = [f"job{n}:\n  script: [echo]\n  variables: {{A: b}}" for n in range(jobs)]
    return "\n".join(head + tail) + "\n"


@pytest.mark.parametrize("keyword", ["extends", "default"])
def test_a_template_given_to_thousands_of_jobs_is_one_line(tmp_path: Path, keyword: str) -> None:
    text = template_bomb(keyword)
    assert len(text) < 200_000  # well within GitLab's 2 MiB
    outcome = run_pyci(write(tmp_path, {".gitlab-ci.yml": text}), "validate")
    assert_refused(outcome, ".gitlab-ci.yml:1:1:", "The expanded configuration is too big")


def test_a_template_given_to_hundreds_of_jobs_is_still_read(tmp_path: Path) -> None:
    """An honest big pipeline: 300 jobs extending a template of 40 keys."""
    outcome = run_pyci(
        write(tmp_path, {".gitlab-ci.yml": template_bomb("extends", jobs=300, keys=20)}),
        "validate",
    )
    assert_bounded(outcome)
    assert outcome.code == 0, outcome.stderr
