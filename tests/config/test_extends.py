"""`extends`: merge order, deep merge rules, GitLab's errors and limits, locations."""

from __future__ import annotations

from runner.core.errors import Location


def test_gitlabs_merge_details_example(expand) -> None:
    config = expand(
        """\
        .only-important:
          variables:
            URL: "http://my-url.internal"
            IMPORTANT_VAR: "the details"
          rules:
            - if: $CI_COMMIT_BRANCH == "stable"
          tags: [production]
          script: [echo "Hello world!"]
        .in-docker:
          variables:
            URL: "http://docker-url.internal"
          tags: [docker]
          image: alpine
        rspec:
          variables:
            GITLAB: "is-awesome"
          extends:
            - .only-important
            - .in-docker
          script: [rake rspec]
        """
    )
    assert config.jobs["rspec"] == {
        "variables": {
            "URL": "http://docker-url.internal",
            "IMPORTANT_VAR": "the details",
            "GITLAB": "is-awesome",
        },
        "rules": [{"if": '$CI_COMMIT_BRANCH == "stable"'}],
        "tags": ["docker"],
        "script": ["rake rspec"],
        "image": "alpine",
        "extends": [".only-important", ".in-docker"],
    }


def test_multi_level_extends_and_null_removes_a_value(expand) -> None:
    config = expand(
        """\
        .tests:
          variables: {VAR1: base}
          script: test
        .rspec:
          extends: .tests
          stage: test
        job:
          extends: .rspec
          variables: null
        """
    )
    assert config.jobs["job"] == {
        "variables": None,
        "script": ["test"],
        "stage": "test",
        "extends": ".rspec",
    }
    assert config.hidden[".rspec"]["script"] == ["test"]


def test_extended_keys_keep_the_location_where_they_were_written(load) -> None:
    from runner.config.expand import expand_config

    loaded = load(
        {
            ".gitlab-ci.yml": "include: tpl.yml\njob:\n  extends: .tpl\n  stage: build\n",
            "tpl.yml": ".tpl:\n  script: [make]\n  stage: test\n",
        }
    )
    job = expand_config(loaded.root).jobs["job"]
    assert job.key_locs["script"] == Location("tpl.yml", 2, 3)
    assert job["script"].item_locs == [Location("tpl.yml", 2, 12)]
    assert job.key_locs["stage"] == Location(".gitlab-ci.yml", 4, 3)


def test_unknown_parent_and_invalid_base(expand, problems) -> None:
    lines = problems(
        lambda: expand(
            """\
            .scalar: text
            job:
              extends: [.missing, .other]
              script: echo
            job2:
              extends: .scalar
              script: echo
            """
        )
    )
    assert lines == [
        ".gitlab-ci.yml:3:3: job: unknown keys in `extends` (.missing, .other)",
        ".gitlab-ci.yml:6:3: job2: invalid base hashes in `extends` (.scalar)",
    ]


def test_an_error_in_a_parent_names_the_parent(expand, problems) -> None:
    lines = problems(
        lambda: expand(".base:\n  extends: .gone\njob:\n  extends: .base\n  script: x\n")
    )
    assert lines == [".gitlab-ci.yml:2:3: .base: unknown keys in `extends` (.gone)"]


def test_circular_dependency(expand, problems) -> None:
    lines = problems(
        lambda: expand(".a:\n  extends: .b\n.b:\n  extends: .a\njob:\n  extends: .a\n  script: x\n")
    )
    assert lines == [
        ".gitlab-ci.yml:2:3: .a: circular dependency detected in `extends`",
        ".gitlab-ci.yml:4:3: .b: circular dependency detected in `extends`",
    ]


def _chain(levels: int) -> str:
    """`job` extends .t1 extends ... .tN: a job with N ancestors."""
    lines = ["job:\n  script: x\n  extends: .t1\n"]
    for level in range(1, levels + 1):
        parent = f"  extends: .t{level + 1}\n" if level < levels else ""
        lines.append(f".t{level}:\n  v{level}: {level}\n{parent}")
    return "".join(lines)


def test_eleven_levels_of_inheritance_are_allowed_twelve_are_too_deep(expand, problems) -> None:
    job = expand(_chain(11)).jobs["job"]
    assert job["v11"] == 11 and job["v1"] == 1
    lines = problems(lambda: expand(_chain(12)))
    assert lines == [".gitlab-ci.yml:36:3: .t11: nesting too deep in `extends`"]


def test_depth_is_checked_from_every_child_even_after_a_parent_was_extended(
    expand, problems
) -> None:
    # .t1 is extended first (it comes first) and is fine on its own: .t11 has 10 ancestors.
    # From `job`, .t11 has 11: GitLab extends .t1 again for `job` and finds it too deep.
    templates = "".join(
        f".t{level}:\n  v{level}: {level}\n  extends: .t{level + 1}\n" for level in range(1, 12)
    )
    text = templates + ".t12:\n  v12: 12\n"
    assert expand(text).hidden[".t1"]["v12"] == 12
    text += "job:\n  script: x\n  extends: .t1\n"
    lines = problems(lambda: expand(text))
    assert lines == [".gitlab-ci.yml:33:3: .t11: nesting too deep in `extends`"]
