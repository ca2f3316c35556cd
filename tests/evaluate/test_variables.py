"""Variable expansion and precedence as GitLab + gitlab-runner do them."""

import pytest

from runner.core.jobspec import Variable
from runner.evaluate.variables import circular_references, expand, expand_existing, resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$X", "x"),
        ("${X}", "x"),
        ("a${X}b", "axb"),
        ("$X_2", ""),  # the name runs on through letters, digits and _
        ("$$X", "$X"),  # $$ is a literal dollar
        ("$$$X", "$x"),
        ("$UNKNOWN", ""),
        ("${UNKNOWN}z", "z"),
        ("cost: 5$", "cost: 5$"),  # a final $ stays
        ("$ x", "$ x"),  # $ before a non-name stays
        ("$1 $* $#", "  "),  # shell specials are empty
        ("${}", ""),  # bad syntax is eaten, as Go does
        ("${X", "X"),
        ("%X%", "%X%"),  # Windows syntax is GitLab's, not the runner's
    ],
)
def test_expand_is_gitlab_runner_expansion(text, expected):
    assert expand(text, {"X": "x"}) == expected


def test_expand_existing_keeps_unknown_references():
    assert expand_existing("$A/${B}/%A%/$$A/${}", {"A": "1"}) == "1/${B}/1/$$A/${}"


def V(key, value, **flags):
    return Variable(key, value, **flags)


def test_later_definitions_win():
    assert resolve([V("A", "1"), V("B", "$A"), V("A", "2")]) == {"A": "2", "B": "2"}


def test_references_are_expanded_recursively_in_any_order():
    result = resolve(
        [
            V("URL", "$SCHEME://$HOST"),
            V("HOST", "$NAME.example"),
            V("NAME", "api"),
            V("SCHEME", "https"),
        ]
    )
    assert result["URL"] == "https://api.example"


def test_raw_values_are_kept_and_references_to_them_stay_raw():
    result = resolve([V("A", "normal"), V("B", "raw-$A", raw=True), V("C", "$B")])
    # GitLab's example: C must get B's text, not B's text expanded
    assert result == {"A": "normal", "B": "raw-$A", "C": "raw-$A"}


def test_dollar_dollar_survives_both_passes_as_one_dollar():
    assert resolve([V("A", "$$HOME"), V("B", "$A")]) == {"A": "$HOME", "B": "$HOME"}


def test_unknown_references_become_empty():
    assert resolve([V("A", "x${NOPE}y")]) == {"A": "xy"}


def test_file_variables_keep_their_content_and_references_get_the_path():
    variables = [V("KEY", "secret $A", file=True), V("A", "1"), V("USE", "--key=$KEY")]
    assert resolve(variables, file_dir="/tmp/job") == {
        "KEY": "secret 1",
        "A": "1",
        "USE": "--key=/tmp/job/KEY",
    }
    # without a file dir, gitlab-runner's RUNNER_TEMP_PROJECT_DIR is used when present
    runner_dir = [V("RUNNER_TEMP_PROJECT_DIR", "/b/p.tmp"), *variables]
    assert resolve(runner_dir)["USE"] == "--key=/b/p.tmp/KEY"


def test_cycles_are_reported_and_left_to_the_runner_pass():
    variables = [V("A", "$B"), V("B", "$A"), V("C", "ok")]
    assert circular_references(variables) == 'circular variable reference detected: ["A", "B"]'
    assert circular_references([V("A", "$A")]) is None  # a self reference is no cycle to GitLab
    assert resolve(variables) == {"A": "$A", "B": "$B", "C": "ok"}
