"""The pipeline read by a forked child: the same answer as in-process, no process left over.

The scenarios that must fork run in a fresh interpreter: pytest may run other threads, and
`load_in_background` (rightly) does not fork then.
"""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.commands.common import ProjectOptions
from runner.errors import ConfigError
from runner.evaluate.predefined import read_git_facts
from runner.pipeline import load_expanded, load_pipeline
from runner.prefetch import load_in_background

ROOT = Path(__file__).resolve().parents[2]

# Helpers of the scenario scripts: this process's children, and results as JSON (locations
# of every mapping, key and item included: they are what error messages are made of).
LOCATED = textwrap.dedent(
    """
    def located(value):
        if isinstance(value, dict):
            return {
                "loc": repr(getattr(value, "loc", None)),
                "key_locs": {repr(k): repr(v) for k, v in getattr(value, "key_locs", {}).items()},
                "items": {repr(k): located(v) for k, v in value.items()},
            }
        if isinstance(value, list):
            return {
                "loc": repr(getattr(value, "loc", None)),
                "item_locs": [repr(v) for v in getattr(value, "item_locs", [])],
                "items": [located(v) for v in value],
            }
        return repr(value)

    def jobs_json(jobs):
        # the planned jobs, but for the variables that hold the time they were planned at
        import dataclasses

        timed = {"CI_PIPELINE_CREATED_AT", "CI_JOB_STARTED_AT"}
        return [
            repr(dataclasses.replace(job, variables=tuple(
                variable for variable in job.variables if variable.key not in timed
            )))
            for job in jobs
        ]

    def expanded_json(expanded):
        parts = (expanded.globals, expanded.jobs, expanded.hidden)
        return {"parts": [located(part) for part in parts], "files": list(expanded.files)}
    """
)
PRELUDE = LOCATED + textwrap.dedent(
    """
    import dataclasses, json, os, signal, sys
    from pathlib import Path
    from runner.commands.common import ProjectOptions
    from runner.pipeline import load_pipeline
    from runner.prefetch import load_in_background

    def children():
        return Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()

    def options(directory):
        return ProjectOptions(Path(directory), Path(directory) / ".gitlab-ci.yml", {})
    """
)
namespace: dict = {}
exec(LOCATED, namespace)  # the same helpers here
expanded_json = namespace["expanded_json"]
jobs_json = namespace["jobs_json"]

PIPELINE = """\
include:
  - local: ci/common.yml
    rules:
      - if: $CI_COMMIT_BRANCH == "feature/x"
variables:
  GLOBAL: "yes"
default:
  image: alpine:3.19
.base: &base
  script: [echo base]
  variables: {A: "1"}
build:
  <<: *base
  stage: build
test:
  extends: .template
  script:
    - !reference [.base, script]
    - echo $CI_COMMIT_SHORT_SHA
"""
COMMON = ".template:\n  stage: test\n  retry: 1\n"


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


def options(directory: Path) -> ProjectOptions:
    return ProjectOptions(directory, directory / ".gitlab-ci.yml", {})


@pytest.fixture
def project(make_repo):
    repo = make_repo()
    repo.commit("First\n\nwith a body\n", {".gitlab-ci.yml": PIPELINE, "ci/common.yml": COMMON})
    repo.repo.create_tag("v1", message="one")
    repo.repo.git.checkout("-b", "feature/x")
    repo.commit("Second", {"b.txt": "b"})
    repo.repo.create_remote("origin", "https://gitlab.example.com/team/app.git")
    return repo.root


def test_the_child_answers_what_an_in_process_load_answers(project):
    result = run_scenario(
        f"""
        opts = options({str(project)!r})
        with load_in_background(opts) as child:
            running = children()
            facts = child.facts(opts.directory)
            expanded = child.expanded(opts, facts)
        print(json.dumps({{"running": running, "after": children(),
                           "facts": dataclasses.asdict(facts),
                           "expanded": expanded_json(expanded)}}))
        """
    )
    assert len(result["running"]) == 1  # the child was forked
    assert result["after"] == []  # and reaped
    facts = read_git_facts(project)
    assert result["facts"] == dataclasses.asdict(facts)
    expected = expanded_json(load_expanded(options(project), facts))
    assert result["expanded"] == expected
    assert expected["files"] == [".gitlab-ci.yml", "ci/common.yml"]  # include:rules matched


def test_the_planned_pipeline_is_the_same(project):
    result = run_scenario(
        f"""
        opts = options({str(project)!r})
        with load_in_background(opts) as child:
            pipeline = load_pipeline(opts, child)
        print(json.dumps(jobs_json(pipeline.jobs)))
        """
    )
    assert result == jobs_json(load_pipeline(options(project)).jobs)


def test_configuration_errors_are_the_in_process_ones(project):
    (project / ".gitlab-ci.yml").write_text(PIPELINE + "broken:\n  stage: nowhere\n  when: 3\n")
    with pytest.raises(ConfigError) as raised:
        load_pipeline(options(project))
    result = run_scenario(
        f"""
        from runner.errors import ConfigError
        opts = options({str(project)!r})
        try:
            with load_in_background(opts) as child:
                load_pipeline(opts, child)
        except ConfigError as exc:
            print(json.dumps([str(problem) for problem in exc.problems]))
        """
    )
    assert result == [str(problem) for problem in raised.value.problems]
    assert any("broken" in line for line in result)


def test_a_block_left_before_the_answer_kills_and_reaps_the_child(project):
    result = run_scenario(
        f"""
        try:
            with load_in_background(options({str(project)!r})):
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


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_a_child_that_dies_is_replaced_by_an_in_process_load(project, signal_name):
    """SIGINT: Ctrl-C reaches the whole process group; the child leaves without a traceback."""
    result = run_scenario(
        f"""
        opts = options({str(project)!r})
        with load_in_background(opts) as child:
            (pid,) = children()
            os.kill(int(pid), signal.{signal_name})
            pipeline = load_pipeline(opts, child)
        print(json.dumps({{"after": children(), "jobs": jobs_json(pipeline.jobs)}}))
        """
    )
    assert result == {"after": [], "jobs": jobs_json(load_pipeline(options(project)).jobs)}


def test_outside_a_repository(tmp_path):
    (tmp_path / ".gitlab-ci.yml").write_text("job:\n  script: [echo $CI_PROJECT_PATH]\n")
    result = run_scenario(
        f"""
        opts = options({str(tmp_path)!r})
        with load_in_background(opts) as child:
            facts = child.facts(opts.directory)
            print(json.dumps({{"facts": dataclasses.asdict(facts),
                               "expanded": expanded_json(child.expanded(opts, facts))}}))
        """
    )
    facts = dataclasses.asdict(read_git_facts(tmp_path))
    # without a commit the timestamp is "now": equal up to the second it was read in
    for found in (result["facts"], facts):
        found.pop("commit_timestamp")
    assert result["facts"] == facts
    assert result["facts"]["project_path"] == f"local/{tmp_path.name}"
    assert result["expanded"] == expanded_json(load_expanded(options(tmp_path)))


def test_other_options_are_loaded_here(project, make_repo):
    other = make_repo("other")
    other.commit("Other", {".gitlab-ci.yml": "other:\n  script: [x]\n"})
    with load_in_background(options(project)) as child:
        facts = child.facts(other.root) if child else read_git_facts(other.root)
        assert child is None or child.expanded(options(other.root), facts) is None
    assert dataclasses.asdict(facts) == dataclasses.asdict(read_git_facts(other.root))


def test_no_child_without_options():
    result = run_scenario(
        """
        with load_in_background(None) as child:
            print(json.dumps([child, children()]))
        """
    )
    assert result == [None, []]


def test_without_pydantic_plugins_pydantic_does_not_look_for_them(project):
    result = run_scenario(
        f"""
        opts = options({str(project)!r})
        with load_in_background(opts) as child:
            load_pipeline(opts, child)
        loader = sys.modules["pydantic.plugin._loader"]
        found = {{
            "stand_in": "__file__" not in vars(loader),
            "plugins": list(loader.get_plugins()),
            "scanned": "importlib.metadata" in sys.modules,
        }}
        repr(loader)
        found["group"] = loader.PYDANTIC_ENTRY_POINT_GROUP  # the real loader answers the rest
        found["replaced"] = "__file__" in vars(sys.modules["pydantic.plugin._loader"])
        print(json.dumps(found))
        """
    )
    from pydantic.plugin._loader import get_plugins

    assert list(get_plugins()) == []  # what the real loader answers here
    assert result == {
        "stand_in": True,
        "plugins": [],
        "scanned": False,
        "group": "pydantic",
        "replaced": True,
    }


def test_an_installed_pydantic_plugin_is_still_used(project, tmp_path):
    """A distribution offering a pydantic plugin: pydantic loads it as usual and calls it."""
    site = tmp_path / "site"
    info = site / "fakeplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nfake = fakeplugin:plugin\n")
    (site / "fakeplugin.py").write_text(
        "seen = []\n"
        "class Plugin:\n"
        "    def new_schema_validator(self, schema, schema_type, *rest):\n"
        "        seen.append(schema_type.__name__)\n"
        "        return None, None, None\n"
        "plugin = Plugin()\n"
    )
    result = run_scenario(
        f"""
        sys.path.insert(0, {str(site)!r})
        opts = options({str(project)!r})
        with load_in_background(opts) as child:
            load_pipeline(opts, child)
        import fakeplugin
        print(json.dumps(sorted(set(fakeplugin.seen))))
        """
    )
    assert "PipelineConfig" in result
