"""Git facts read by a forked child: the same answer as in-process, and no process left over.

The scenarios that must fork run in a fresh interpreter: pytest may run other threads, and
`git_facts_in_background` (rightly) does not fork then.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.evaluate.git_prefetch import git_facts_in_background
from runner.evaluate.predefined import read_git_facts

ROOT = Path(__file__).resolve().parents[2]

# Helpers of the scenario scripts: this process's children, and the facts as a dict.
PRELUDE = textwrap.dedent(
    """
    import dataclasses, json, os, signal, sys
    from pathlib import Path
    from runner.evaluate.git_prefetch import git_facts_in_background

    def children():
        return Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()

    def facts_dict(facts):
        return dataclasses.asdict(facts)
    """
)


def run_scenario(script: str) -> dict:
    """Run `script` (after PRELUDE) in a new interpreter; what it printed as JSON.

    Its stderr must stay empty: neither process may print a traceback."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    return json.loads(done.stdout)


def facts_dict(facts) -> dict:
    import dataclasses

    return dataclasses.asdict(facts)


@pytest.fixture
def project(make_repo):
    repo = make_repo()
    repo.commit("First\n\nwith a body\n", {"a.txt": "a"})
    repo.repo.create_tag("v1", message="one")
    repo.repo.git.checkout("-b", "feature/x")
    repo.commit("Second", {"b.txt": "b"})
    repo.repo.create_remote("origin", "https://gitlab.example.com/team/app.git")
    return repo.root


def test_the_child_answers_what_an_in_process_read_answers(project):
    result = run_scenario(
        f"""
        with git_facts_in_background({str(project)!r}) as read:
            running = children()
            facts = read(Path({str(project)!r}))
            print(json.dumps({{"running": running, "after": children(),
                               "facts": facts_dict(facts)}}))
        """
    )
    assert len(result["running"]) == 1  # the child was forked
    assert result["after"] == []  # and reaped once its answer was read
    assert result["facts"] == facts_dict(read_git_facts(project))


def test_a_block_left_before_the_answer_kills_and_reaps_the_child(project):
    result = run_scenario(
        f"""
        try:
            with git_facts_in_background({str(project)!r}) as read:
                running = children()
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        try:
            os.waitpid(-1, os.WNOHANG)
            zombie = True
        except ChildProcessError:
            zombie = False
        print(json.dumps({{"running": running, "after": children(), "zombie": zombie}}))
        """
    )
    assert len(result["running"]) == 1
    assert result == {"running": result["running"], "after": [], "zombie": False}


def test_a_child_that_dies_is_replaced_by_an_in_process_read(project):
    result = run_scenario(
        f"""
        with git_facts_in_background({str(project)!r}) as read:
            (pid,) = children()
            os.kill(int(pid), signal.SIGKILL)
            facts = read(Path({str(project)!r}))
            print(json.dumps({{"after": children(), "facts": facts_dict(facts)}}))
        """
    )
    assert result["after"] == []
    assert result["facts"] == facts_dict(read_git_facts(project))


def test_outside_a_repository_no_child_is_needed_to_be_right(tmp_path):
    result = run_scenario(
        f"""
        with git_facts_in_background({str(tmp_path)!r}) as read:
            facts = facts_dict(read(Path({str(tmp_path)!r})))
        print(json.dumps(facts))
        """
    )
    expected = facts_dict(read_git_facts(tmp_path))
    # without a commit the timestamp is "now": equal up to the second it was read in
    for facts in (result, expected):
        facts.pop("commit_timestamp")
    assert result == expected
    assert result["project_path"] == f"local/{tmp_path.name}"


def test_facts_of_another_directory_are_read_here(project, make_repo):
    other = make_repo("other")
    other.commit("Other", {"c.txt": "c"})
    with git_facts_in_background(project) as read:
        facts = read(other.root)
    assert facts_dict(facts) == facts_dict(read_git_facts(other.root))


def test_no_child_for_a_missing_directory(tmp_path):
    missing = tmp_path / "missing"
    result = run_scenario(
        f"""
        with git_facts_in_background({str(missing)!r}):
            print(json.dumps(children()))
        """
    )
    assert result == []


def test_sigint_in_the_child_is_not_a_traceback(project):
    """Ctrl-C reaches the whole process group: the child leaves quietly, the parent reads."""
    result = run_scenario(
        f"""
        with git_facts_in_background({str(project)!r}) as read:
            (pid,) = children()
            os.kill(int(pid), signal.SIGINT)
            facts = read(Path({str(project)!r}))
            print(json.dumps(facts_dict(facts)))
        """
    )
    assert result == facts_dict(read_git_facts(project))
