"""GitLab's environment_scope matching and ranking, and protected refs with wildcards."""

from __future__ import annotations

from runner.vars.model import SettingsVariable
from runner.vars.scope import for_project, for_ref, ref_is_protected, scope_matches


def var(key: str, value: str, scope: str = "*", **flags: object) -> SettingsVariable:
    return SettingsVariable(key, value, "test", environment_scope=scope, **flags)  # type: ignore[arg-type]


def test_scope_matching_is_an_sql_like_glob_on_star_only():
    assert scope_matches("*", None) and scope_matches("*", "production")
    assert not scope_matches("production", None)
    assert scope_matches("review/*", "review/app-1")
    assert scope_matches("*-prod", "eu-prod")
    assert not scope_matches("review/*", "staging")
    assert not scope_matches("review/?", "review/a")  # `?` is a plain character
    assert scope_matches("review/?", "review/?")
    assert not scope_matches("Production", "production")


def test_within_a_level_exact_beats_glob_beats_star_whatever_the_order():
    level = (var("K", "exact", "review/a"), var("K", "glob", "review/*"), var("K", "star"))
    settings = for_ref([level], protected_ref=False)
    assert [v.value for v in settings.for_environment("review/a")][-1] == "exact"
    assert [v.value for v in settings.for_environment("review/b")][-1] == "glob"
    assert [v.value for v in settings.for_environment(None)] == ["star"]


def test_a_higher_level_wins_even_with_a_wider_scope():
    group = (var("K", "group-exact", "production"),)
    project = (var("K", "project-star"),)
    chosen = for_ref([group, project], protected_ref=False).for_environment("production")
    assert [v.value for v in chosen][-1] == "project-star"


def test_protected_and_projects():
    level = (var("P", "x", protected=True), var("U", "y"))
    assert [v.key for v in for_ref([level], False).for_environment(None)] == ["U"]
    assert [v.key for v in for_ref([level], True).for_environment(None)] == ["P", "U"]
    scoped = [var("A", "1", projects=("team/*",)), var("B", "2")]
    assert [v.key for v in for_project(scoped, "other/x")] == ["B"]
    assert [v.key for v in for_project(scoped, "team/sub/x")] == ["A", "B"]
    assert ref_is_protected("release/1.0", ["main", "release/*"])
    assert not ref_is_protected("feature", ["main", "release/*"])
