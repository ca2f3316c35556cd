"""`include`: forms, merging order, globs, nesting, limits, rules, offline kinds, locations."""

from __future__ import annotations

from pathlib import Path

from runner.config.include import MAX_INCLUDES, load_config, load_single_file
from runner.config.yamlload import Reference
from runner.core.errors import Location

JOB = "job:\n  script: echo\n"


def test_include_as_a_string(load) -> None:
    loaded = load({".gitlab-ci.yml": "include: a.yml\n" + JOB, "a.yml": "a:\n  script: a\n"})
    assert list(loaded.root) == ["a", "job"]
    assert loaded.files == (".gitlab-ci.yml", "a.yml")


def test_include_as_a_list_of_strings_and_hashes(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include:\n  - a.yml\n  - local: /b.yml\n" + JOB,
            "a.yml": "a:\n  script: a\n",
            "b.yml": "b:\n  script: b\n",
        }
    )
    assert list(loaded.root) == ["a", "b", "job"]
    assert "include" not in loaded.root


def test_include_as_a_single_hash(load) -> None:
    loaded = load({".gitlab-ci.yml": "include:\n  local: a.yml\n" + JOB, "a.yml": "a: {}\n"})
    assert "a" in loaded.root


def test_the_including_file_wins_and_mappings_deep_merge(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": """\
                include: common.yml
                variables:
                  USER: username
                test:
                  rules:
                    - when: manual
                  artifacts:
                    reports:
                      junit: rspec.xml
            """,
            "common.yml": """\
                variables:
                  USER: common
                  PASSWORD: secret
                test:
                  rules:
                    - when: never
                  script: [rake spec]
                  artifacts:
                    reports:
                      dotenv: deploy.env
            """,
        }
    )
    root = loaded.root
    assert root["variables"] == {"USER": "username", "PASSWORD": "secret"}
    assert root["test"] == {
        "rules": [{"when": "manual"}],
        "script": ["rake spec"],
        "artifacts": {"reports": {"dotenv": "deploy.env", "junit": "rspec.xml"}},
    }


def test_later_includes_override_earlier_ones(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include: [a.yml, b.yml]\n" + JOB,
            "a.yml": "default:\n  image: a\n",
            "b.yml": "default:\n  image: b\n",
        }
    )
    assert loaded.root["default"] == {"image": "b"}


def test_a_file_included_twice_is_merged_twice_the_last_time_wins(load) -> None:
    # GitLab's documented example: unit-tests and smoke-tests both include defaults.yml
    files = {
        "defaults.yml": "default:\n  before_script: default\n",
        "unit.yml": "include: defaults.yml\ndefault:\n  before_script: unit\n",
        "smoke.yml": "include: defaults.yml\ndefault:\n  before_script: smoke\n",
    }
    unit_last = load({**files, ".gitlab-ci.yml": "include: [smoke.yml, unit.yml]\n" + JOB})
    assert unit_last.root["default"] == {"before_script": "unit"}
    assert unit_last.files == (".gitlab-ci.yml", "smoke.yml", "defaults.yml", "unit.yml")


def test_nested_includes_are_relative_to_the_project_root(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include: ci/one.yml\n" + JOB,
            "ci/one.yml": "include: ci/two.yml\none: {}\n",
            "ci/two.yml": "two: {}\n",
        }
    )
    assert list(loaded.root) == ["two", "one", "job"]


def test_locations_after_include_point_into_the_included_file(load) -> None:
    loaded = load(
        {".gitlab-ci.yml": "include: sub/a.yml\n" + JOB, "sub/a.yml": "\n\na:\n  stage: x\n"}
    )
    assert loaded.root.key_locs["a"] == Location("sub/a.yml", 3, 1)
    assert loaded.root["a"].key_locs["stage"] == Location("sub/a.yml", 4, 3)
    assert loaded.root.key_locs["job"] == Location(".gitlab-ci.yml", 2, 1)


def test_a_merged_key_keeps_the_location_of_the_side_that_won(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include: a.yml\njob:\n  stage: b\n",
            "a.yml": "job:\n  stage: a\n  x: 1\n",
        }
    )
    job = loaded.root["job"]
    assert job.key_locs["stage"] == Location(".gitlab-ci.yml", 3, 3)
    assert job.key_locs["x"] == Location("a.yml", 3, 3)


def test_glob_star_stays_in_one_directory(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include: 'configs/*.yml'\n" + JOB,
            "configs/b.yml": "b: {}\n",
            "configs/a.yml": "a: {}\n",
            "configs/deep/c.yml": "c: {}\n",
        }
    )
    assert list(loaded.root) == ["a", "b", "job"]


def test_glob_double_star_crosses_directories(load) -> None:
    files = {
        "configs/a.yml": "a: {}\n",
        "configs/deep/c.yml": "c: {}\n",
        "configs/deep/er/d.yml": "d: {}\n",
    }
    everything = load({**files, ".gitlab-ci.yml": "include: 'configs/**.yml'\n" + JOB})
    assert list(everything.root) == ["a", "c", "d", "job"]
    only_subfolders = load({**files, ".gitlab-ci.yml": "include: 'configs/**/*.yml'\n" + JOB})
    assert list(only_subfolders.root) == ["c", "d", "job"]


def test_a_glob_that_matches_nothing_includes_nothing(load) -> None:
    loaded = load({".gitlab-ci.yml": "include: 'none/*.yml'\n" + JOB})
    assert list(loaded.root) == ["job"]


def test_variables_expand_in_include_paths(load) -> None:
    loaded = load(
        {".gitlab-ci.yml": "include: ci/$KIND.yml\n" + JOB, "ci/fast.yml": "fast: {}\n"},
        variables={"KIND": "fast"},
    )
    assert "fast" in loaded.root


def test_missing_empty_and_non_yaml_files_are_errors_in_gitlabs_words(load, problems) -> None:
    lines = problems(
        lambda: load(
            {
                ".gitlab-ci.yml": "include:\n  - nope.yml\n  - empty.yml\n  - notes.txt\n" + JOB,
                "empty.yml": "\n",
                "notes.txt": "a: 1\n",
            }
        )
    )
    assert lines == [
        ".gitlab-ci.yml:2:5: Local file `nope.yml` does not exist!",
        ".gitlab-ci.yml:3:5: Local file `empty.yml` is empty!",
        ".gitlab-ci.yml:4:5: Included file `notes.txt` does not have YAML extension!",
    ]


def test_a_path_outside_the_project_does_not_exist(load, problems) -> None:
    lines = problems(lambda: load({".gitlab-ci.yml": "include: ../outside.yml\n" + JOB}))
    assert lines == [".gitlab-ci.yml:1:1: Local file `../outside.yml` does not exist!"]


def test_an_include_cycle_is_reported_with_its_chain(load, problems) -> None:
    lines = problems(
        lambda: load(
            {
                ".gitlab-ci.yml": "include: a.yml\n" + JOB,
                "a.yml": "include: b.yml\na: {}\n",
                "b.yml": "b: {}\ninclude: a.yml\n",
            }
        )
    )
    assert lines == [
        "b.yml:2:1: Maximum of 150 nested includes are allowed! "
        "(include cycle: a.yml -> b.yml -> a.yml)"
    ]


def test_more_than_150_includes_is_gitlabs_limit(load, problems) -> None:
    files = {f"c/{i:03}.yml": f"j{i}: {{}}\n" for i in range(MAX_INCLUDES)}
    exactly = load({**files, ".gitlab-ci.yml": "include: 'c/*.yml'\n" + JOB})
    assert len(exactly.files) == MAX_INCLUDES + 1
    files["c/zzz.yml"] = "last: {}\n"
    lines = problems(lambda: load({**files, ".gitlab-ci.yml": "include: 'c/*.yml'\n" + JOB}))
    assert lines == [".gitlab-ci.yml:1:1: Maximum of 150 nested includes are allowed!"]


def test_include_kinds_that_need_a_server_fail_in_one_line_each(load, problems) -> None:
    lines = problems(
        lambda: load(
            {
                ".gitlab-ci.yml": """\
                    include:
                      - https://example.com/ci.yml
                      - project: group/lib
                        file: ci.yml
                      - template: Auto-DevOps.gitlab-ci.yml
                      - component: $CI_SERVER_FQDN/org/comp@1.0
                      - remote: https://example.com/r.yml
                    job:
                      script: echo
                """
            }
        )
    )
    tail = (
        "cannot be resolved offline: pyci reads only `include:local` files "
        "(copy the file into the project)"
    )
    assert lines == [
        f".gitlab-ci.yml:2:5: include:remote `https://example.com/ci.yml` {tail}",
        f".gitlab-ci.yml:3:5: include:project `group/lib` {tail}",
        f".gitlab-ci.yml:5:5: include:template `Auto-DevOps.gitlab-ci.yml` {tail}",
        f".gitlab-ci.yml:6:5: include:component `$CI_SERVER_FQDN/org/comp@1.0` {tail}",
        f".gitlab-ci.yml:7:5: include:remote `https://example.com/r.yml` {tail}",
    ]


def test_malformed_include_entries(load, problems) -> None:
    lines = problems(
        lambda: load(
            {
                ".gitlab-ci.yml": """\
                    include:
                      - lokal: a.yml
                      - {rules: [{when: always}]}
                      - local: a.yml
                        remote: https://x/a.yml
                      - 5
                    job:
                      script: echo
                """
            }
        )
    )
    assert lines == [
        ".gitlab-ci.yml:2:5: include config contains unknown keys: lokal",
        '.gitlab-ci.yml:3:5: `{"rules":[{"when":"always"}]}` does not have a valid subkey for '
        "include. Valid subkeys are: `local`, `project`, `remote`, `template`, `artifact`, "
        "`component`",
        ".gitlab-ci.yml:4:5: Each include must use only one of: `local`, `project`, `remote`, "
        "`template`, `artifact`, `component`",
        ".gitlab-ci.yml:6:5: include config should be a hash or a string",
    ]


def test_include_rules_go_through_the_injected_matcher(load) -> None:
    seen = []

    def matcher(rules, where):
        seen.append((rules, where))
        return rules[0].get("if") == "$YES"

    loaded = load(
        {
            ".gitlab-ci.yml": """\
                include:
                  - local: a.yml
                    rules:
                      - if: $YES
                  - local: b.yml
                    rules:
                      - if: $NO
                job:
                  script: echo
            """,
            "a.yml": "a: {}\n",
            "b.yml": "b: {}\n",
        },
        rule_matcher=matcher,
    )
    assert list(loaded.root) == ["a", "job"]
    assert seen == [
        ([{"if": "$YES"}], Location(".gitlab-ci.yml", 2, 5)),
        ([{"if": "$NO"}], Location(".gitlab-ci.yml", 5, 5)),
    ]
    assert loaded.files == (".gitlab-ci.yml", "a.yml")


def test_errors_of_an_included_file_name_that_file(load, problems) -> None:
    lines = problems(
        lambda: load({".gitlab-ci.yml": "include: a.yml\n" + JOB, "a.yml": "a:\n  b: [1\n"})
    )
    assert len(lines) == 1
    assert lines[0].startswith("a.yml:3:1: `a.yml`: YAML syntax error: ")


def test_references_stay_unresolved_in_the_loaded_root(load) -> None:
    loaded = load({".gitlab-ci.yml": "job:\n  script: !reference [.x, script]\n"})
    assert isinstance(loaded.root["job"]["script"], Reference)


def test_load_single_file_does_not_follow_includes(project) -> None:
    directory = project(
        {
            ".gitlab-ci.yml": """\
                include: other.yml
                .setup:
                  script: [echo setup]
                job:
                  script:
                    - !reference [.setup, script]
                    - !reference [.elsewhere, script]
            """
        }
    )
    document = load_single_file(directory, ".gitlab-ci.yml")
    assert document["include"] == "other.yml"
    script = document["job"]["script"]
    assert script[0] == ["echo setup"]
    assert script[1] == Reference((".elsewhere", "script"), Location(".gitlab-ci.yml", 7, 7))


def test_load_config_accepts_an_absolute_or_relative_root(project) -> None:
    directory = project({"ci/main.yml": JOB})
    for file in (directory / "ci" / "main.yml", Path("ci/main.yml")):
        loaded = load_config(directory, file)
        assert loaded.files == ("ci/main.yml",)
        assert loaded.root.key_locs["job"] == Location("ci/main.yml", 1, 1)


def test_without_a_rule_matcher_every_include_is_taken(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include:\n  - local: a.yml\n    rules:\n      - when: never\n" + JOB,
            "a.yml": "a: {}\n",
        }
    )
    assert "a" in loaded.root


def test_globs_in_a_git_repository_skip_ignored_files(project) -> None:
    import subprocess

    directory = project(
        {
            ".gitlab-ci.yml": "include: 'ci/**.yml'\n" + JOB,
            ".gitignore": "ci/generated.yml\n",
            "ci/tracked.yml": "tracked: {}\n",
            "ci/new.yml": "new: {}\n",
            "ci/generated.yml": "generated: {}\n",
        }
    )
    subprocess.run(["git", "init", "-q"], cwd=directory, check=True)
    subprocess.run(["git", "add", "ci/tracked.yml"], cwd=directory, check=True)
    loaded = load_config(directory, directory / ".gitlab-ci.yml")
    assert list(loaded.root) == ["new", "tracked", "job"]


def test_globs_outside_git_skip_pyci_state(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include: '**/*.yml'\n" + JOB,
            ".pyci/logs/x.yml": "x: {}\n",
            "ci/a.yml": "a: {}\n",
        }
    )
    assert list(loaded.root) == ["a", "job"]


def test_a_wildcard_does_not_include_the_file_that_holds_it(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": "include: ci/all.yml\n" + JOB,
            "ci/all.yml": "include: 'ci/*.yml'\nall: {}\n",
            "ci/one.yml": "one: {}\n",
        }
    )
    assert list(loaded.root) == ["one", "all", "job"]
