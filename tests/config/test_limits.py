"""GitLab's bounds on one parsed file, at their edges: what passes, and the first that fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config.limits import MAX_YAML_DEPTH, MAX_YAML_SIZE_BYTES
from runner.config.rubysize import array_size, hash_size, string_size, value_size
from runner.config.textfile import UnreadableFile, read_config_text
from runner.config.yamlload import load_yaml
from runner.core.errors import ConfigError


def nested(levels: int) -> str:
    """A document whose mappings and lists nest `levels` deep, the root mapping included."""
    return "a: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def test_the_depth_limit_counts_every_mapping_and_list() -> None:
    assert load_yaml(nested(MAX_YAML_DEPTH), "f.yml")
    with pytest.raises(ConfigError) as caught:
        load_yaml(nested(MAX_YAML_DEPTH + 1), "f.yml")
    assert str(caught.value) == (
        "f.yml:1:103: The parsed YAML is too big (nested more than 100 levels deep)"
    )


def test_an_alias_adds_the_height_of_what_it_names() -> None:
    deep = "[" * 60 + "]" * 60
    assert load_yaml(f"a: &d {deep}\nb: *d\n", "f.yml")
    with pytest.raises(ConfigError, match="nested more than 100 levels deep"):
        load_yaml(f"a: &d {deep}\nb: {'[' * 41}*d{']' * 41}\n", "f.yml")


def test_the_size_limit_counts_an_alias_each_time_it_is_used() -> None:
    item = "x" * 100  # a 141-byte Ruby string
    per_use = array_size(100) + 100 * string_size(item)
    uses = MAX_YAML_SIZE_BYTES // per_use - 1
    anchor = f"big: &big [{', '.join([item] * 100)}]\n"
    fits = anchor + "uses: [" + ", ".join(["*big"] * (uses - 1)) + "]\n"
    assert len(load_yaml(fits, "f.yml")["uses"]) == uses - 1
    too_many = anchor + "uses: [" + ", ".join(["*big"] * (uses + 2)) + "]\n"
    with pytest.raises(ConfigError, match="The parsed YAML is too big"):
        load_yaml(too_many, "f.yml")


def test_ruby_sizes_of_values() -> None:
    assert string_size("x" * 23) == 40 and string_size("x" * 24) == 65
    assert array_size(3) == 40 and array_size(4) == 72
    assert hash_size(0) == 40 and hash_size(8) == 176 and hash_size(9) == 256
    assert value_size({"a": [1, None, True, "b"]}) == 176 + 40 + 72 + 40
    assert value_size(2**64) == 40 + 16


def test_redefined_anchors_still_load() -> None:
    assert load_yaml("a: &x 1\nb: &x 2\nc: *x\n", "f.yml") == {"a": 1, "b": 2, "c": 2}


def test_text_is_read_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.yml"
    path.write_text("a" * 10)
    assert read_config_text(path, limit=10) == "a" * 10
    with pytest.raises(UnreadableFile, match="too big: 11 bytes, at most 10"):
        path.write_text("a" * 11)
        read_config_text(path, limit=10)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.mkdir(), "it is a directory"),
        (lambda p: p.symlink_to(p.name), "a symbolic link that loops"),
        (lambda p: p.symlink_to("/dev/zero"), "it is a device"),
        (lambda p: p.write_bytes(b"a: \xff\n"), "not UTF-8 text"),
        (lambda p: None, "No such file or directory"),
    ],
)
def test_what_cannot_be_configuration_is_one_sentence(tmp_path: Path, make, why: str) -> None:
    path = tmp_path / "f.yml"
    make(path)
    with pytest.raises(UnreadableFile, match=why):
        read_config_text(path)
