"""`!reference`: across includes, after extends, nesting, missing targets and cycles."""

from __future__ import annotations

import pytest

from runner.config.expand import expand_config
from runner.core.errors import ConfigError, Location


def test_reference_into_an_included_file(load) -> None:
    loaded = load(
        {
            ".gitlab-ci.yml": """\
                include: configs.yml
                .teardown:
                  after_script:
                    - echo deleting environment
                test:
                  script:
                    - !reference [.setup, script]
                    - echo running my own command
                  after_script:
                    - !reference [.teardown, after_script]
            """,
            "configs.yml": ".setup:\n  script:\n    - echo creating environment\n",
        }
    )
    job = expand_config(loaded.root).jobs["test"]
    assert job["script"] == ["echo creating environment", "echo running my own command"]
    assert job["after_script"] == ["echo deleting environment"]
    # each script line keeps the place it was written
    assert job["script"].item_locs == [
        Location("configs.yml", 3, 7),
        Location(".gitlab-ci.yml", 8, 7),
    ]


def test_reference_to_a_mapping_and_to_one_value(expand) -> None:
    config = expand(
        """\
        .vars:
          variables:
            URL: "http://my-url.internal"
            IMPORTANT_VAR: "the details"
        test-vars-1:
          variables: !reference [.vars, variables]
          script: printenv
        test-vars-2:
          variables:
            MY_VAR: !reference [.vars, variables, IMPORTANT_VAR]
          script: printenv
        """
    )
    assert config.jobs["test-vars-1"]["variables"] == {
        "URL": "http://my-url.internal",
        "IMPORTANT_VAR": "the details",
    }
    assert config.jobs["test-vars-2"]["variables"] == {"MY_VAR": "the details"}


def test_nested_references_in_scripts(expand) -> None:
    config = expand(
        """\
        .snippets:
          one:
            - echo "ONE!"
          two:
            - !reference [.snippets, one]
            - echo "TWO!"
          three:
            - !reference [.snippets, two]
            - echo "THREE!"
        nested-references:
          script:
            - !reference [.snippets, three]
        """
    )
    assert config.jobs["nested-references"]["script"] == [
        'echo "ONE!"',
        'echo "TWO!"',
        'echo "THREE!"',
    ]


def test_references_are_resolved_after_extends(expand) -> None:
    config = expand(
        """\
        .base:
          script: [make]
        .mid:
          extends: .base
        job:
          script: !reference [.mid, script]
        """
    )
    assert config.jobs["job"]["script"] == ["make"]


def test_a_reference_inherited_through_extends_is_replaced_not_merged(expand) -> None:
    # GitLab merges first (the reference is an opaque value), then resolves it
    config = expand(
        """\
        .vars:
          variables: {B: "2"}
        .base:
          variables: {A: "1"}
        job:
          extends: .base
          variables: !reference [.vars, variables]
          script: x
        """
    )
    assert config.jobs["job"]["variables"] == {"B": "2"}


def test_references_in_rules_are_flattened(expand) -> None:
    config = expand(
        """\
        .rules:
          rules:
            - if: $A
            - if: $B
        job:
          script: x
          rules:
            - !reference [.rules, rules]
            - when: never
        """
    )
    assert config.jobs["job"]["rules"] == [{"if": "$A"}, {"if": "$B"}, {"when": "never"}]


def test_missing_targets_in_gitlabs_words(expand, problems) -> None:
    lines = problems(
        lambda: expand(
            """\
            .base:
              script: [a]
            job:
              script:
                - !reference [.nope, script]
                - !reference [.base, before_script]
                - !reference [.base, script, '0']
            """
        )
    )
    assert lines == [
        '.gitlab-ci.yml:5:7: !reference [".nope", "script"] could not be found',
        '.gitlab-ci.yml:6:7: !reference [".base", "before_script"] could not be found',
        '.gitlab-ci.yml:7:7: !reference [".base", "script", "0"] could not be found',
    ]


def test_a_circular_chain_in_gitlabs_words(expand, problems) -> None:
    lines = problems(
        lambda: expand(
            """\
            job-1:
              script:
                - echo doing step 1 of job 1
                - !reference [job-3, script]
            job-3:
              script:
                - echo doing step 1 of job 3
                - !reference [job-1, script]
            """
        )
    )
    assert lines == [
        '.gitlab-ci.yml:4:7: !reference ["job-3", "script"] is part of a circular chain',
        '.gitlab-ci.yml:8:7: !reference ["job-1", "script"] is part of a circular chain',
    ]


def test_the_problem_names_the_job_and_key(load) -> None:
    loaded = load({".gitlab-ci.yml": "job:\n  image: !reference [.x, image]\n  script: x\n"})
    with pytest.raises(ConfigError) as caught:
        expand_config(loaded.root)
    (problem,) = caught.value.problems
    assert (problem.job, problem.key) == ("job", "image")
