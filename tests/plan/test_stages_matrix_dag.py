"""Stage lists, parallel/matrix naming and the needs cycle check, on small hand-built inputs."""

from runner.plan.dag import find_cycle
from runner.plan.matrix import expand_job, matrix_combinations, selected_names
from runner.plan.stages import only_edge_stages, resolve_stages


def test_default_stages_are_wrapped_in_pre_and_post():
    assert resolve_stages(None) == (".pre", "build", "test", "deploy", ".post")


def test_declared_pre_and_post_move_to_the_ends_and_duplicates_go():
    assert resolve_stages([".post", "lint", "lint", ".pre", "ship"]) == (
        ".pre",
        "lint",
        "ship",
        ".post",
    )


def test_parallel_count_names_jobs_index_slash_total():
    names = [(i.name, i.index, i.total) for i in expand_job("rspec", 3, None)]
    assert names == [("rspec 1/3", 1, 3), ("rspec 2/3", 2, 3), ("rspec 3/3", 3, 3)]


def test_matrix_combinations_follow_entries_then_key_order():
    combos = matrix_combinations([{"OS": ["a", "b"], "V": ["1", "2"]}, {"OS": "c"}])
    assert combos == [
        {"OS": "a", "V": "1"},
        {"OS": "a", "V": "2"},
        {"OS": "b", "V": "1"},
        {"OS": "b", "V": "2"},
        {"OS": "c"},
    ]


def test_matrix_instances_are_named_after_values_and_numbered():
    instances = expand_job("build", None, [{"ARCH": ["amd64", "arm64"], "GO": 1.22}])
    assert [(i.name, i.index, i.total, i.matrix) for i in instances] == [
        ("build: [amd64, 1.22]", 1, 2, {"ARCH": "amd64", "GO": "1.22"}),
        ("build: [arm64, 1.22]", 2, 2, {"ARCH": "arm64", "GO": "1.22"}),
    ]


def test_a_job_without_parallel_is_itself():
    (instance,) = expand_job("lint", None, None)
    assert (instance.name, instance.index, instance.total) == ("lint", None, None)


def test_matrix_selector_names_follow_the_selector():
    assert selected_names("t", [{"A": "x", "B": ["1", "2"]}]) == ["t: [x, 1]", "t: [x, 2]"]


def test_cycle_is_found_and_reported_in_needs_order():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]


def test_no_cycle_and_unknown_needs_are_ignored():
    assert find_cycle({"a": ["b", "ghost"], "b": [], "c": ["a", "b"]}) is None


def test_only_pre_and_post_jobs_make_no_pipeline():
    assert only_edge_stages([".pre", ".post"])
    assert not only_edge_stages([".pre", "test"])


def test_matrix_expressions_are_filled_and_unknown_names_reported():
    from runner.plan.matrix import interpolate_matrix

    assert interpolate_matrix("b: [$[[ matrix.OS ]], $[[matrix.V]]]", {"OS": "mac", "V": "2"}) == (
        "b: [mac, 2]",
        [],
    )
    assert interpolate_matrix("$[[ matrix.X ]]", {}) == ("$[[ matrix.X ]]", ["X"])
