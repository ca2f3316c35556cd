"""expand_config: globals vs jobs, `default:`, `inherit:default`, flat scripts."""

from __future__ import annotations

from runner.config.expand import ExpandedConfig
from runner.core.errors import Location


def test_top_level_keys_are_split_into_globals_hidden_jobs_and_jobs(expand) -> None:
    config: ExpandedConfig = expand(
        """\
        stages: [build, test]
        variables: {A: "1"}
        workflow:
          rules: [{when: always}]
        image: alpine
        .template:
          script: [echo template]
        pages:
          script: [make site]
        build:
          script: make
        """
    )
    assert list(config.globals) == ["stages", "variables", "workflow", "image"]
    assert list(config.jobs) == ["pages", "build"]
    assert list(config.hidden) == [".template"]
    assert config.globals.key_locs["image"] == Location(".gitlab-ci.yml", 5, 1)


def test_a_job_that_is_not_a_mapping_is_an_error_in_gitlabs_words(expand, problems) -> None:
    lines = problems(lambda: expand("extra: bundle update\nempty:\n.blank:\n.text: fine\n"))
    assert lines == [
        ".gitlab-ci.yml:1:1: jobs:extra config should be a hash",
        ".gitlab-ci.yml:2:1: jobs:empty config should be a hash",
        ".gitlab-ci.yml:3:1: jobs:.blank config can't be blank",
    ]


def test_spec_in_the_configuration_document_is_reported(expand, problems) -> None:
    lines = problems(lambda: expand("spec:\n  inputs: {}\njob:\n  script: x\n"))
    assert lines == [
        ".gitlab-ci.yml:1:1: `spec` belongs in a header document, followed by `---` and the "
        "configuration"
    ]


def test_boolean_keys_name_jobs_as_ruby_prints_them(expand) -> None:
    assert list(expand("on:\n  script: x\n").jobs) == ["true"]


def test_default_keys_are_copied_into_jobs_that_lack_them(expand) -> None:
    config = expand(
        """\
        default:
          image: ruby:3.0
          retry: 2
          before_script: bundle install
        rspec:
          script: bundle exec rspec
        rspec 2.7:
          image: ruby:2.7
          script: bundle exec rspec
        """
    )
    assert config.jobs["rspec"] == {
        "script": ["bundle exec rspec"],
        "image": "ruby:3.0",
        "retry": 2,
        "before_script": ["bundle install"],
    }
    assert config.jobs["rspec 2.7"]["image"] == "ruby:2.7"
    assert config.jobs["rspec 2.7"]["retry"] == 2
    # a defaulted key points at the line in `default:`
    assert config.jobs["rspec"].key_locs["image"] == Location(".gitlab-ci.yml", 2, 3)


def test_defaults_are_shared_not_copied(expand) -> None:
    """As Ruby's deep_merge shares what it does not merge: one value for every job (nothing
    after expand changes a job's values in place; each job's own mapping is its own)."""
    config = expand("default:\n  tags: [a]\none:\n  script: x\ntwo:\n  script: y\n")
    assert config.jobs["one"]["tags"] == ["a"]
    assert config.jobs["one"]["tags"] is config.jobs["two"]["tags"]
    assert config.jobs["one"] is not config.jobs["two"]


def test_inherit_default_false_or_a_list(expand) -> None:
    config = expand(
        """\
        default:
          image: alpine
          retry: 2
          interruptible: true
        none:
          script: x
          inherit:
            default: false
        some:
          script: x
          inherit:
            default: [retry]
        all:
          script: x
          inherit:
            default: true
            variables: false
        """
    )
    assert "image" not in config.jobs["none"] and "retry" not in config.jobs["none"]
    assert config.jobs["some"]["retry"] == 2
    assert "image" not in config.jobs["some"]
    assert config.jobs["all"]["image"] == "alpine"
    assert config.jobs["all"]["inherit"] == {"default": True, "variables": False}


def test_legacy_top_level_keys_act_as_defaults(expand) -> None:
    config = expand(
        """\
        image: alpine
        services: [postgres]
        before_script: [setup]
        after_script: cleanup
        cache: {paths: [vendor]}
        variables: {A: "1"}
        job:
          script: x
        """
    )
    assert config.jobs["job"] == {
        "script": ["x"],
        "image": "alpine",
        "services": ["postgres"],
        "cache": {"paths": ["vendor"]},
        "before_script": ["setup"],
        "after_script": ["cleanup"],
    }
    assert "variables" not in config.jobs["job"]  # the planner merges global variables


def test_a_key_both_at_top_level_and_in_default_is_gitlabs_error(expand, problems) -> None:
    lines = problems(lambda: expand("image: a\ndefault:\n  image: b\njob:\n  script: x\n"))
    assert lines == [".gitlab-ci.yml:1:1: image is defined in top-level and `default:` entry"]


def test_default_keys_gitlab_does_not_inherit_are_left_for_the_validator(expand) -> None:
    config = expand("default:\n  stage: build\n  tags: [t]\njob:\n  script: x\n")
    assert "stage" not in config.jobs["job"]
    assert config.jobs["job"]["tags"] == ["t"]


def test_trigger_jobs_and_hidden_jobs_take_no_defaults(expand) -> None:
    config = expand(
        "default:\n  image: alpine\nbridge:\n  trigger: other/project\n.tpl:\n  script: x\n"
    )
    assert config.jobs["bridge"] == {"trigger": "other/project"}
    assert config.hidden[".tpl"] == {"script": ["x"]}


def test_scripts_become_flat_lists_of_strings(expand) -> None:
    config = expand(
        """\
        .setup: &setup
          - echo one
          - echo two
        job:
          before_script: echo before
          script:
            - *setup
            - [echo three, [echo four]]
            - echo five
          after_script: []
          hooks:
            pre_get_sources_script: echo hook
        """
    )
    job = config.jobs["job"]
    assert job["before_script"] == ["echo before"]
    assert job["script"] == ["echo one", "echo two", "echo three", "echo four", "echo five"]
    assert job["after_script"] == []
    assert job["hooks"]["pre_get_sources_script"] == ["echo hook"]
    assert job["script"].item_locs[0] == Location(".gitlab-ci.yml", 2, 5)
    assert job.key_locs["before_script"] == Location(".gitlab-ci.yml", 5, 3)


def test_scripts_gitlab_rejects_are_left_as_written_for_the_validator(expand) -> None:
    eleven_levels = "[" * 11 + "x" + "]" * 11
    config = expand(f"deep:\n  script: {eleven_levels}\nnumber:\n  script: [1, echo]\n")
    nested = config.jobs["deep"]["script"]
    for _ in range(10):
        assert len(nested) == 1 and isinstance(nested[0], list)
        nested = nested[0]
    assert nested == ["x"]
    assert config.jobs["number"]["script"] == [1, "echo"]
    ten_levels = "[" * 10 + "x" + "]" * 10
    assert expand(f"ok:\n  script: {ten_levels}\n").jobs["ok"]["script"] == ["x"]


def test_global_scripts_stages_and_workflow_rules_are_flattened(expand) -> None:
    config = expand(
        """\
        .more: &more [deploy]
        stages: [build, *more]
        before_script: setup
        default:
          after_script: done
        workflow:
          rules:
            - [{if: $A}]
            - when: always
        job:
          script: x
        """
    )
    assert config.globals["stages"] == ["build", "deploy"]
    assert config.globals["before_script"] == ["setup"]
    assert config.globals["default"]["after_script"] == ["done"]
    assert config.globals["workflow"]["rules"] == [{"if": "$A"}, {"when": "always"}]
    assert config.jobs["job"]["after_script"] == ["done"]


def test_all_problems_of_a_step_are_reported_together(expand, problems) -> None:
    lines = problems(
        lambda: expand(
            """\
            a:
              extends: .gone
            b:
              script: !reference [.gone, script]
            c: text
            """
        )
    )
    assert lines == [
        ".gitlab-ci.yml:2:3: a: unknown keys in `extends` (.gone)",
        '.gitlab-ci.yml:4:11: !reference [".gone", "script"] could not be found',
        ".gitlab-ci.yml:5:1: jobs:c config should be a hash",
    ]


def test_plain_dicts_built_by_code_are_expanded_too() -> None:
    from runner.config.expand import expand_config
    from runner.config.source import YamlMap

    config = expand_config(YamlMap({"default": {"image": "a"}, "job": {"script": "x"}}))
    assert config.jobs["job"] == {"script": ["x"], "image": "a"}
    assert isinstance(config.jobs["job"], YamlMap)


def test_deprecated_types_become_stages_unless_stages_exist(expand) -> None:
    config = expand("types: [a, b]\njob:\n  script: x\n")
    assert config.globals == {"stages": ["a", "b"]}
    assert config.globals.key_locs["stages"] == Location(".gitlab-ci.yml", 1, 1)
    both = expand("stages: [s]\ntypes: [t]\njob:\n  script: x\n")
    assert both.globals == {"stages": ["s"]}
