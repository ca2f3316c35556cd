"""GitLab's release rules as pure functions."""

import pytest

from runner.schedule.release import Prior, composite, decide
from tests.schedule.helpers import job


@pytest.mark.parametrize(
    ("priors", "dag", "expected"),
    [
        ([], False, "success"),
        ([Prior("success"), Prior("skipped")], False, "success"),
        ([Prior("success"), Prior("skipped")], True, "skipped"),
        ([Prior("failed", allow_failure=True)], True, "success"),
        ([Prior("failed")], False, "failed"),
        ([Prior("failed"), Prior("running")], False, "waiting"),
        ([Prior("manual", allow_failure=True), Prior("success")], False, "success"),
        ([Prior("manual", allow_failure=True)], True, "skipped"),
        ([Prior("manual"), Prior("success")], False, "blocked"),
        ([Prior("canceled"), Prior("success")], False, "canceled"),
        ([Prior("skipped"), Prior("skipped")], False, "skipped"),
        ([Prior("created")], True, "waiting"),
    ],
)
def test_composite_folds_statuses_like_gitlab(priors, dag, expected):
    assert composite(priors, dag) == expected


@pytest.mark.parametrize(
    ("when", "state", "dag", "played", "expected"),
    [
        ("on_success", "success", False, False, "run"),
        ("on_success", "skipped", False, False, "run"),
        ("on_success", "skipped", True, False, "skip"),
        ("on_success", "failed", False, False, "skip"),
        ("on_failure", "failed", False, False, "run"),
        ("on_failure", "success", False, False, "skip"),
        ("always", "failed", False, False, "run"),
        ("always", "success", True, False, "run"),
        ("always", "canceled", False, False, "skip"),
        ("manual", "success", False, False, "manual"),
        ("manual", "success", False, True, "run"),
        ("manual", "failed", False, True, "skip"),
        ("delayed", "success", False, False, "run"),
        ("never", "success", False, False, "skip"),
        ("on_success", "waiting", False, False, "wait"),
        ("always", "blocked", False, False, "blocked"),
    ],
)
def test_decide_follows_when(when, state, dag, played, expected):
    assert decide(job("j", when=when), state, played, dag) == expected
