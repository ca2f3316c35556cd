"""Choosing what `pyci run` runs."""

import pytest

from runner.core.errors import UsageError
from runner.schedule.selection import select_jobs
from tests.schedule.helpers import job

PIPELINE = [
    job("compile", "build"),
    job("docs", "build"),
    job("unit", "test"),
    job("e2e", "test", needs=["compile"]),
    job("ship", "deploy", when="manual"),
]


def names(selection):
    return [j.name for j in selection.jobs]


def test_no_names_runs_everything_and_plays_manual_jobs_asked_for():
    selection = select_jobs(PIPELINE, {}, manual=["ship"])
    assert names(selection) == [j.name for j in PIPELINE]
    assert selection.played == {"ship"} and not selection.partial and not selection.forced


def test_named_jobs_run_alone():
    selection = select_jobs(PIPELINE, {}, names=["unit", "e2e"])
    assert names(selection) == ["unit", "e2e"]
    assert selection.forced == {"unit", "e2e"} and selection.partial


def test_needs_adds_what_named_jobs_wait_for():
    assert names(select_jobs(PIPELINE, {}, names=["e2e"], with_needs=True)) == ["compile", "e2e"]
    assert names(select_jobs(PIPELINE, {}, names=["ship"], with_needs=True)) == [
        "compile",
        "docs",
        "unit",
        "e2e",
        "ship",
    ]


def test_naming_a_manual_job_plays_it():
    assert "ship" in select_jobs(PIPELINE, {}, names=["ship"]).played


def test_stage_selects_its_jobs():
    assert names(select_jobs(PIPELINE, {}, stages=["build"])) == ["compile", "docs"]


def test_unknown_and_excluded_names_are_usage_errors():
    with pytest.raises(UsageError, match="no job named 'unti'"):
        select_jobs(PIPELINE, {}, names=["unti"])
    with pytest.raises(UsageError, match="did you mean: unit"):
        select_jobs(PIPELINE, {}, names=["Uni"])
    with pytest.raises(UsageError, match="'nightly' is not in this pipeline: rules"):
        select_jobs(PIPELINE, {"nightly": "rules: no rule matched"}, names=["nightly"])
    with pytest.raises(UsageError, match="--stage lint"):
        select_jobs(PIPELINE, {}, stages=["lint"])
    with pytest.raises(UsageError):
        select_jobs(PIPELINE, {}, manual=["nope"])
