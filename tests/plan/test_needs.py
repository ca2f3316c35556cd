"""Needs and dependencies: name resolution, GitLab's errors, and pruning after rules."""

from runner.core.jobspec import Need
from runner.plan.needs import (
    JobRefs,
    NameTable,
    NeedRef,
    check_references,
    concrete_needs,
    link_created_jobs,
)


def table() -> NameTable:
    names = NameTable()
    names.add("build", ["build"], 1)
    names.add("test", ["test 1/2", "test 2/2"], 2)
    names.add("pkg", ["pkg: [a, x]", "pkg: [b, x]"], 2)
    names.add("deploy", ["deploy"], 3)
    return names


def messages(jobs):
    return [p.message for p in check_references(jobs, table())]


def test_need_of_a_parallel_job_means_all_its_instances():
    needs = concrete_needs([NeedRef("test", artifacts=False)], table())
    assert needs == [Need("test 1/2", False), Need("test 2/2", False)]


def test_matrix_selector_picks_named_combinations():
    ref = NeedRef("pkg", matrix=({"P": "b", "Q": "x"},))
    assert concrete_needs([ref], table()) == [Need("pkg: [b, x]")]


def test_undefined_need_and_future_stage_in_gitlab_words():
    job = JobRefs("test", 2, (NeedRef("nope"), NeedRef("deploy")), None)
    assert messages([job]) == [
        "test job: undefined need: nope",
        "test job: need deploy is not defined in current or prior stages",
    ]


def test_same_stage_need_is_allowed_and_optional_undefined_is_silent():
    job = JobRefs("deploy2", 2, (NeedRef("test"), NeedRef("ghost", optional=True)), None)
    assert messages([job]) == []


def test_unknown_matrix_combination_is_an_undefined_need():
    job = JobRefs("d", 3, (NeedRef("pkg", matrix=({"P": "c", "Q": "x"},)),), None)
    assert messages([job]) == ["d job: undefined need: pkg: [c, x]"]


def test_duplicated_needs_are_listed_once():
    job = JobRefs("d", 3, (NeedRef("build"), NeedRef("build"), NeedRef("build")), None)
    assert messages([job]) == ["d has the following needs duplicated: build."]


def test_dependencies_are_checked_like_needs():
    job = JobRefs("test", 2, None, ("missing", "deploy", "build"))
    assert messages([job]) == [
        "test job: undefined dependency: missing",
        "test job: dependency deploy is not defined in current or prior stages",
    ]


def test_rules_needs_are_checked_too():
    job = JobRefs("b", 1, None, None, rule_needs=((NeedRef("nope"),),))
    assert messages([job]) == ["b job: undefined need: nope"]


def test_needs_of_left_out_jobs_fail_unless_optional():
    needs = [Need("build"), Need("lint", optional=True), Need("gone")]
    kept, deps, problems = link_created_jobs("t", needs, ["build", "gone"], {"build", "t"})
    assert kept == (Need("build"),)
    assert deps == ("build",)
    assert [p.message for p in problems] == [
        "'t' job needs 'gone' job, but 'gone' does not exist in the pipeline. This might be "
        "because of the only, except, or rules keywords. To need a job that sometimes does not "
        "exist in the pipeline, use needs:optional."
    ]


def test_empty_needs_stay_an_empty_dag_edge_list_and_none_stays_none():
    assert link_created_jobs("t", [], None, {"t"})[:2] == ((), None)
    assert link_created_jobs("t", None, None, {"t"})[:2] == (None, None)
