"""`pyci validate`, `pyci show` and `pyci list` through the real command line, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runner.cli import main
from tests.gitutil import git


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "x")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


VALID = """
include: [ci/extra.yml]
.base: {stage: build, tags: [docker]}
build: {extends: .base, script: [make]}
test: {script: [make test], needs: [build], variables: {MODE: fast}}
"""
EXTRA = "lint: {stage: .pre, script: [ruff]}\n"


def test_validate_reports_a_valid_pipeline_with_its_job_count(tmp_path, capsys):
    repo = project(tmp_path, {".gitlab-ci.yml": VALID, "ci/extra.yml": EXTRA})
    code, out, err = run(capsys, "validate", "-C", str(repo))
    assert (code, out) == (0, ".gitlab-ci.yml: valid (3 jobs)\n")
    assert err == "note: ignored, no effect locally: tags (1 job); --verbose names the jobs\n"


def test_validate_lists_every_problem_and_exits_1(tmp_path, capsys):
    text = "a: {script: x, needs: [nope]}\nb: {script: x, dependencies: [gone]}\n"
    repo = project(tmp_path, {"ci.yml": text})
    code, out, err = run(capsys, "validate", "-C", str(repo), "-f", "ci.yml")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "error: ci.yml:1:24: a job: undefined need: nope",
        "error: ci.yml:2:31: b job: undefined dependency: gone",
    ]


def test_validate_says_when_workflow_creates_no_pipeline(tmp_path, capsys):
    text = "workflow: {rules: [{if: $CI_COMMIT_TAG}]}\njob: {script: x}\n"
    repo = project(tmp_path, {".gitlab-ci.yml": text})
    code, out, _ = run(capsys, "validate", "-C", str(repo))
    assert code == 0
    assert out.startswith(".gitlab-ci.yml: valid (no pipeline: Pipeline filtered out")


def test_shape_only_checks_fragments_without_includes_or_cross_job_checks(tmp_path, capsys):
    fragment = "job:\n  extends: .elsewhere\n  needs: [not-here]\n"
    broken = "job:\n  script: x\n  when: sometimes\n"
    repo = project(tmp_path, {"part.yml": fragment, "broken.yml": broken})
    code, out, _ = run(capsys, "validate", "-C", str(repo), "--shape-only", "part.yml")
    assert (code, out) == (0, "part.yml: valid shape\n")
    code, out, err = run(capsys, "validate", "-C", str(repo), "--shape-only", "broken.yml")
    assert code == 1 and out == ""
    assert err.startswith("error: broken.yml:3:3: jobs:job when should be one of")


def test_usage_errors_exit_2(tmp_path, capsys):
    repo = project(tmp_path, {".gitlab-ci.yml": "job: {script: x}\n"})
    assert run(capsys, "validate", "-C", str(repo), "extra.yml")[0] == 2
    assert run(capsys, "list", "-C", str(repo), "-f", "missing.yml")[0] == 2
    assert run(capsys, "list", "-C", str(repo), "--variable", "=x")[0] == 2
    code, _, err = run(capsys, "show", "-C", str(repo), "jbo")
    assert code == 2
    assert err == "error: no job named 'jbo' in the pipeline (did you mean job?)\n"


def test_show_prints_the_merged_job_with_inherited_variables(tmp_path, capsys):
    text = """
variables: {GLOBAL: g, OTHER: o}
default: {image: alpine}
.base: {stage: build, script: [make], variables: {MODE: slow}}
build:
  extends: .base
  variables: {MODE: fast}
  inherit: {variables: [GLOBAL]}
  parallel: 2
"""
    repo = project(tmp_path, {".gitlab-ci.yml": text})
    code, out, _ = run(capsys, "show", "-C", str(repo), "build")
    assert code == 0
    shown = yaml.safe_load(out)["build"]
    assert shown["stage"] == "build" and shown["script"] == ["make"]
    assert shown["image"] == "alpine" and shown["parallel"] == 2
    assert shown["variables"] == {"GLOBAL": "g", "MODE": "fast"}
    assert run(capsys, "show", "-C", str(repo), ".base")[0] == 0
    assert run(capsys, "show", "-C", str(repo), "build 3/2")[0] == 2


def test_show_of_a_matrix_instance_has_its_values(tmp_path, capsys):
    text = "test:\n  script: x\n  parallel: {matrix: [{PY: ['3.11', '3.12']}]}\n"
    repo = project(tmp_path, {".gitlab-ci.yml": text})
    code, out, _ = run(capsys, "show", "-C", str(repo), "test: [3.12]")
    assert code == 0
    assert out.splitlines()[0] == "# CI_NODE_INDEX=2 CI_NODE_TOTAL=2"
    assert yaml.safe_load(out) == {"test: [3.12]": {"script": ["x"], "variables": {"PY": "3.12"}}}


def test_list_plain_table_and_all(tmp_path, capsys):
    text = """
build: {stage: build, script: x}
test: {script: x, needs: [build], allow_failure: true}
skip: {script: x, rules: [{if: $NOPE}]}
"""
    repo = project(tmp_path, {".gitlab-ci.yml": text})
    code, out, _ = run(capsys, "list", "-C", str(repo), "--all")
    assert code == 0
    assert out.splitlines() == [
        "STAGE  JOB    WHEN                        NEEDS",
        "build  build  on_success                  -",
        "test   test   on_success (allow failure)  build",
        "test   skip   excluded                    rules: no rule matched",
    ]


def test_list_json_on_no_pipeline_is_an_empty_array_and_one_line(tmp_path, capsys):
    text = "workflow: {rules: [{when: never}]}\njob: {script: x}\n"
    repo = project(tmp_path, {".gitlab-ci.yml": text})
    code, out, err = run(capsys, "list", "--json", "-C", str(repo))
    assert (code, out) == (0, "[]\n")
    assert err == (
        "no pipeline: Pipeline filtered out by workflow rules: workflow:rules rule 1 says never\n"
    )
