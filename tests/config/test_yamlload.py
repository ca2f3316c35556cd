"""The YAML loader: psych's scalar types, merge keys, anchors, locations, syntax errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from runner.config.source import YamlList, YamlMap
from runner.config.yamlload import Reference, load_yaml, load_yaml_documents, psych_scalar
from runner.core.errors import ConfigError, Location

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("tRuE", True),  # psych matches case-insensitively; PyYAML would keep a string
        ("yes", True),
        ("on", True),
        ("oN", True),
        ("no", False),
        ("OFF", False),
        ("false", False),
        ("y", "y"),  # YAML 1.1's y/n are not booleans in psych
        ("n", "n"),
        ("null", None),
        ("NuLl", None),
        ("~", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("1_000", 1000),
        ("1,000", 1000),  # psych drops commas in numbers
        ("017", 15),  # a leading zero is octal in YAML 1.1
        ("08", "08"),
        ("0x1F", 31),
        ("0b101", 5),
        ("1:30", 90),  # sexagesimal
        ("1.10", 1.1),
        ("1.", 1.0),
        (".5", 0.5),
        ("1e5", "1e5"),  # YAML 1.1 floats need a dot
        ("1.0e+3", 1000.0),
        ("-.inf", -math.inf),
        ("3.14.15", "3.14.15"),
        ("push", "push"),
        ("on_success", "on_success"),
        (":symbol", ":symbol"),
    ],
)
def test_plain_scalars_are_typed_as_psych_types_them(text: str, value: object) -> None:
    assert psych_scalar(text) == value
    assert type(psych_scalar(text)) is type(value)


def test_nan_is_a_float() -> None:
    assert math.isnan(psych_scalar(".NaN"))


def test_quoted_and_block_scalars_stay_strings() -> None:
    doc = load_yaml("a: 'true'\nb: \"1\"\nc: |\n  on\nd: !!str yes\ne: !!int '12'\n", "f.yml")
    assert doc == {"a": "true", "b": "1", "c": "on\n", "d": "yes", "e": 12}


def test_on_as_a_key_is_the_boolean_true_as_in_gitlab() -> None:
    doc = load_yaml("on: push\nyes: 1\n", "f.yml")
    assert doc == {True: 1}


@pytest.mark.parametrize(
    ("text", "kind"), [("2024-01-31", "Date"), ("2024-01-31 10:00:00", "Time")]
)
def test_unquoted_dates_are_refused_like_gitlabs_safe_loader(text: str, kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(f"job:\n  variables:\n    DAY: {text}\n", "ci.yml")
    assert str(caught.value) == (
        f"ci.yml:3:10: Tried to load unspecified class: {kind} "
        "(quote the value to keep it a string)"
    )


def test_locations_of_mappings_keys_and_items() -> None:
    doc = load_yaml("job:\n  script:\n    - one\n    - two\n  stage: test\n", "dir/ci.yml")
    job = doc["job"]
    assert isinstance(job, YamlMap) and isinstance(job["script"], YamlList)
    assert doc.key_locs["job"] == Location("dir/ci.yml", 1, 1)
    assert job.loc == Location("dir/ci.yml", 2, 3)
    assert job.key_locs["stage"] == Location("dir/ci.yml", 5, 3)
    assert job["script"].item_locs == [Location("dir/ci.yml", 3, 7), Location("dir/ci.yml", 4, 7)]


def test_line_offset_shifts_every_location() -> None:
    doc = load_yaml("a: 1\n", "f.yml", line_offset=10)
    assert doc.key_locs["a"] == Location("f.yml", 11, 1)


def test_merge_key_with_one_anchor() -> None:
    doc = load_yaml(
        ".tpl: &tpl\n  image: alpine\n  stage: build\njob:\n  <<: *tpl\n  stage: test\n", "f.yml"
    )
    assert doc["job"] == {"image": "alpine", "stage": "test"}
    # the merged key points where the anchor's key was written
    assert doc["job"].key_locs["image"] == Location("f.yml", 2, 3)
    assert doc["job"].key_locs["stage"] == Location("f.yml", 6, 3)


def test_merge_key_with_a_list_of_anchors_first_one_wins() -> None:
    text = "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nj:\n  <<: [*a, *b]\n"
    assert load_yaml(text, "f.yml")["j"] == {"x": 1, "z": 2, "y": 1}


def test_merge_key_written_after_a_key_overrides_it_as_psych_does() -> None:
    text = "a: &a {x: 1}\nj:\n  x: 0\n  <<: *a\n"
    assert load_yaml(text, "f.yml")["j"] == {"x": 1}


def test_merge_key_with_a_scalar_is_kept_as_a_plain_key() -> None:
    assert load_yaml("j:\n  <<: 5\n", "f.yml")["j"] == {"<<": 5}


def test_an_anchor_can_be_redefined_later_in_the_file() -> None:
    text = "a: &x 1\nb: *x\nc: &x 2\nd: *x\n"
    assert load_yaml(text, "f.yml") == {"a": 1, "b": 1, "c": 2, "d": 2}


def test_aliased_values_are_independent_copies() -> None:
    doc = load_yaml("a: &x [1]\nb: *x\n", "f.yml")
    doc["a"].append(2)
    assert doc["b"] == [1]


def test_duplicate_keys_last_value_wins_first_position_kept() -> None:
    doc = load_yaml("a: 1\nb: 2\na: 3\n", "f.yml")
    assert list(doc.items()) == [("a", 3), ("b", 2)]
    assert doc.key_locs["a"] == Location("f.yml", 3, 1)


def test_reference_tag_becomes_a_reference() -> None:
    doc = load_yaml("job:\n  script: !reference [.setup, script]\n", "f.yml")
    assert doc["job"]["script"] == Reference((".setup", "script"), Location("f.yml", 2, 11))


@pytest.mark.parametrize(
    ("value", "shown"),
    [("[]", "[]"), ("[a, 1]", '["a", 1]'), ("abc", '"abc"')],
)
def test_invalid_reference_is_an_error_in_gitlabs_words(value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(f"job:\n  script: !reference {value}\n", "f.yml")
    assert str(caught.value) == f"f.yml:2:11: !reference {shown} is not valid"


def test_syntax_error_names_file_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml("job:\n  script: [a\n  stage: b\n", "ci.yml")
    (problem,) = caught.value.problems
    assert problem.location == Location("ci.yml", 3, 8)
    assert problem.message.startswith("YAML syntax error: ")


def test_a_document_that_is_not_a_mapping_is_invalid_configuration_format() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml("- a\n- b\n", "ci.yml")
    assert str(caught.value) == "ci.yml:1:1: Invalid configuration format"


def test_empty_text_is_an_empty_mapping() -> None:
    assert load_yaml("# nothing\n", "ci.yml") == {}


def test_all_documents_are_returned() -> None:
    docs = load_yaml_documents("a: 1\n---\nb: 2\n---\n", "f.yml")
    assert docs == [{"a": 1}, {"b": 2}, None]
    assert docs[1].key_locs["b"] == Location("f.yml", 3, 1)


def test_a_recursive_alias_is_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml("a: &x\n  b: *x\n", "f.yml")
    assert "an alias refers to the node that contains it" in str(caught.value)


def _plain(value: object) -> object:
    if isinstance(value, Reference):
        return ("REF", value.path)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class _OracleLoader(yaml.SafeLoader):
    pass


_OracleLoader.add_constructor(
    "!reference", lambda loader, node: ("REF", tuple(loader.construct_sequence(node)))
)


def test_gitlab_schema_fixtures_load_as_pyyaml_loads_them() -> None:
    """GitLab's own fixtures have none of psych's quirks: both loaders must agree on all."""
    fixtures = sorted((CONFORMANCE / "gitlab-schema").glob("**/*.yml"))
    assert len(fixtures) > 100
    for fixture in fixtures:
        text = fixture.read_text()
        ours = [_plain(doc) for doc in load_yaml_documents(text, fixture.name)]
        assert ours == list(yaml.load_all(text, Loader=_OracleLoader)), fixture
