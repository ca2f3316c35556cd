"""Scenario corpus: each `cases/<name>/` holds a pipeline and `expect.yml`, run through the CLI.

`expect.yml` is a list of runs on the same project (later runs see what earlier ones left, such
as the cache). Each run may give:

- `args`: more command-line arguments (`{scratch}` becomes an empty directory outside the
  project); `exit_code` and pipeline `status` (from the JSON report);
- `jobs`: every job of the report, each with the fields it must have (status, exit_code,
  allowed_failure, attempts, coverage, ...);
- `starts_after`: pairs [b, a]: b started only after a finished;
  `finished_before`: pairs [a, b]: a finished before b finished (proves parallelism);
- `output`: per job, plain output lines that must appear in that order;
  `log`: per job, text its `.pyci/logs/<job>.log` must contain;
- `artifacts`: per job, files its stored artifacts must hold;
  `cache`: per cache key, files (and their exact content) its archive must hold;
- `stderr`: text stderr must contain; `absent`: text that must appear in no output at all.

Every run also writes a JUnit report, checked against the JSON one.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.run.conftest import CASES, Run

SCENARIOS = sorted(p.name for p in CASES.iterdir() if (p / "expect.yml").exists())


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name, project, pyci, tmp_path):
    repo = project(name)
    runs = yaml.safe_load((CASES / name / "expect.yml").read_text())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for number, expected in enumerate(runs, 1):
        args = [arg.replace("{scratch}", str(scratch)) for arg in expected.get("args", [])]
        run = pyci(repo, *args)
        context = f"run {number} of {name}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
        check_run(run, expected, context)


def check_run(run: Run, expected: dict, context: str) -> None:
    assert run.exit_code == expected.get("exit_code", 0), context
    if "status" in expected:
        assert run.report["status"] == expected["status"], context
    if "jobs" in expected:
        assert sorted(run.jobs) == sorted(expected["jobs"]), context
        for job, fields in expected["jobs"].items():
            actual = {key: run.jobs[job][key] for key in fields}
            assert actual == fields, f"{job}: {context}"
    for later, earlier in expected.get("starts_after", []):
        assert run.started_at(later) > run.finished_at(earlier), context
    for first, second in expected.get("finished_before", []):
        assert run.finished_at(first) < run.finished_at(second), context
    for job, wanted in expected.get("output", {}).items():
        assert_in_order(run.lines(job), wanted, f"{job}: {context}")
    for job, texts in expected.get("log", {}).items():
        log = run.log(job)
        for text in texts:
            assert text in log, f"{job}: {text!r} not in log:\n{log}"
    for job, files in expected.get("artifacts", {}).items():
        from runner.build.artifacts import ArtifactStore

        stored = ArtifactStore(run.project / ".pyci").job_dir(job)
        for file in files:
            assert (stored / file).is_file(), f"{job}: no artifact {file} in {stored}"
    for key, files in expected.get("cache", {}).items():
        from runner.build.cache import CacheStore

        archive = CacheStore(run.project / ".pyci" / "cache").archive_path(key)
        with tarfile.open(archive) as tar:
            contents = {member.name: member for member in tar.getmembers()}
            for file, text in files.items():
                assert file in contents, f"cache {key}: no {file} in {sorted(contents)}"
                data = tar.extractfile(contents[file])
                assert data is not None and data.read().decode() == text, f"cache {key}: {file}"
    if run.report:  # the JUnit report tells the same story as the JSON one
        assert run.junit is not None
        cases = {case.get("name"): case for case in run.junit.iter("testcase")}
        assert sorted(cases) == sorted(run.jobs), context
        for name, job in run.jobs.items():
            assert (cases[name].find("failure") is not None) == (job["status"] == "failed")
            assert cases[name].get("classname") == job["stage"]
    if "stderr" in expected:
        assert expected["stderr"] in run.stderr, context
    junit = ET.tostring(run.junit, encoding="unicode") if run.junit is not None else ""
    everything = run.stdout + run.stderr + str(run.report) + junit + all_logs(run.project)
    for text in expected.get("absent", []):
        assert text not in everything, context


def assert_in_order(lines: list[str], wanted: list[str], context: str) -> None:
    position = 0
    for text in wanted:
        try:
            position = lines.index(text, position) + 1
        except ValueError:
            raise AssertionError(f"{text!r} missing (in order) from {lines}: {context}") from None


def all_logs(project: Path) -> str:
    logs = project / ".pyci" / "logs"
    if not logs.is_dir():
        return ""
    return "".join(path.read_text(errors="replace") for path in sorted(logs.iterdir()))
