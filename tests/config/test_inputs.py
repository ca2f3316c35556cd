"""`spec:inputs` headers, `include:inputs` and `$[[ inputs.x ]]` interpolation."""

from __future__ import annotations

import pytest

from runner.config.inputs import evaluate_block, expand_existing, posix_escape
from runner.core.errors import Location

TEMPLATE = """\
spec:
  inputs:
    stage:
      default: test
      options: [test, deploy]
    jobs:
      type: number
      default: 1
    lint:
      type: boolean
      default: true
    needs:
      type: array
      default: []
    version:
      regex: ^v\\d+$
      description: a release tag
---
build-$[[ inputs.stage ]]:
  stage: $[[ inputs.stage ]]
  parallel: $[[ inputs.jobs ]]
  allow_failure: $[[ inputs.lint ]]
  needs: $[[ inputs.needs ]]
  script: echo "release $[[ inputs.version ]] of $[[ inputs.stage ]]"
"""


def including(inputs: str) -> dict[str, str]:
    return {
        ".gitlab-ci.yml": f"include:\n  - local: tpl.yml\n    inputs:\n{inputs}",
        "tpl.yml": TEMPLATE,
    }


def test_values_and_defaults_are_interpolated_with_their_types(load) -> None:
    loaded = load(including("      version: v2\n      needs: [a, b]\n      jobs: 3\n"))
    assert loaded.root == {
        "build-test": {
            "stage": "test",
            "parallel": 3,
            "allow_failure": True,
            "needs": ["a", "b"],
            "script": 'echo "release v2 of test"',
        }
    }


def test_lines_of_the_configuration_keep_their_place_after_the_header(load) -> None:
    loaded = load(including("      version: v1\n"))
    job = loaded.root["build-test"]
    assert loaded.root.key_locs["build-test"] == Location("tpl.yml", 19, 1)
    assert job.key_locs["script"] == Location("tpl.yml", 24, 3)


def test_input_errors_in_gitlabs_words(load, problems) -> None:
    lines = problems(
        lambda: load(
            including(
                "      stage: prod\n      jobs: many\n      lint: 'yes'\n"
                "      needs: x\n      colour: red\n"
            )
        )
    )
    assert lines == [
        ".gitlab-ci.yml:3:5: `tpl.yml`: `version` input: required value has not been provided",
        ".gitlab-ci.yml:3:5: `tpl.yml`: unknown input arguments: colour",
        ".gitlab-ci.yml:4:7: `tpl.yml`: `stage` input: `prod` cannot be used because it is "
        "not in the list of allowed options",
        ".gitlab-ci.yml:5:7: `tpl.yml`: `jobs` input: provided value is not a number",
        ".gitlab-ci.yml:6:7: `tpl.yml`: `lint` input: provided value is not a boolean",
        ".gitlab-ci.yml:7:7: `tpl.yml`: `needs` input: provided value is not an array",
    ]


def test_regex_mismatch(load, problems) -> None:
    lines = problems(lambda: load(including("      version: 2.0\n")))
    assert lines == [
        ".gitlab-ci.yml:4:7: `tpl.yml`: `version` input: provided value is not a string"
    ]
    lines = problems(lambda: load(including("      version: release\n")))
    assert lines == [
        ".gitlab-ci.yml:4:7: `tpl.yml`: `version` input: provided value does not match "
        "required RegEx pattern"
    ]


def test_bad_defaults_and_header_specs(load, problems) -> None:
    header = """\
        spec:
          inputs:
            a:
              type: number
              default: one
            b:
              type: text
            c:
              type: boolean
              default: true
              options: [true]
        ---
        job:
          script: echo
    """
    lines = problems(lambda: load({".gitlab-ci.yml": "include: tpl.yml\n", "tpl.yml": header}))
    assert lines == [
        "tpl.yml:3:5: `tpl.yml`: `a` input: default value is not a number",
        "tpl.yml:6:5: `tpl.yml`: unknown input specification for `b` "
        "(valid types: array, boolean, number, string)",
        "tpl.yml:8:5: `tpl.yml`: `c` input: Options can only be used with string and number inputs",
    ]


def test_header_errors_come_first_and_alone(load, problems) -> None:
    header = "spec:\n  inputs:\n    d:\n      colour: red\n  other: 1\n---\njob: {}\n"
    lines = problems(lambda: load({".gitlab-ci.yml": "include: tpl.yml\n", "tpl.yml": header}))
    assert lines == [
        "tpl.yml:4:7: `tpl.yml`: header:spec:inputs:d config contains unknown keys: colour",
        "tpl.yml:5:3: `tpl.yml`: header:spec config contains unknown keys: other",
    ]


def test_inputs_for_a_file_without_header(load, problems) -> None:
    lines = problems(
        lambda: load(
            {
                ".gitlab-ci.yml": "include:\n  - local: a.yml\n    inputs:\n      x: 1\n",
                "a.yml": "job:\n  script: echo\n",
            }
        )
    )
    assert lines == [
        ".gitlab-ci.yml:3:5: `a.yml`: Given inputs not defined in the `spec` section of the "
        "included configuration file"
    ]


def test_a_file_without_header_is_not_interpolated(load) -> None:
    loaded = load({".gitlab-ci.yml": "job:\n  script: echo $[[ inputs.x ]]\n"})
    assert loaded.root["job"]["script"] == "echo $[[ inputs.x ]]"


def test_the_root_file_header_takes_defaults_or_given_inputs(load) -> None:
    files = {
        ".gitlab-ci.yml": """\
            spec:
              inputs:
                env:
                  default: staging
            ---
            deploy:
              script: deploy $[[ inputs.env ]]
        """
    }
    assert load(files).root["deploy"]["script"] == "deploy staging"
    given = load(files, inputs={"env": "production"})
    assert given.root["deploy"]["script"] == "deploy production"


def test_interpolation_errors_point_at_the_block(load, problems) -> None:
    text = """\
        spec:
          inputs:
            name:
              default: x
        ---
        job:
          script:
            - echo $[[ inputs.nam ]]
            - echo $[[ inputs.name | shout ]]
            - echo $[[ name ]]
    """
    lines = problems(lambda: load({".gitlab-ci.yml": "include: tpl.yml\n", "tpl.yml": text}))
    assert lines == [
        "tpl.yml:8:12: `tpl.yml`: unknown interpolation key: `nam`",
        "tpl.yml:9:12: `tpl.yml`: no function matching `shout`: check that the function name, "
        "arguments, and types are correct",
        "tpl.yml:10:12: `tpl.yml`: invalid interpolation access pattern",
    ]


def test_more_than_two_documents_is_refused(load, problems) -> None:
    lines = problems(
        lambda: load({".gitlab-ci.yml": "spec:\n  inputs: {}\n---\na: 1\n---\nb: 2\n"})
    )
    assert lines == [
        ".gitlab-ci.yml:6:1: a configuration file holds at most 2 YAML documents "
        "(a `spec:` header, `---`, then the configuration)"
    ]


def test_a_leading_document_marker_is_not_a_header(load) -> None:
    loaded = load({".gitlab-ci.yml": "---\njob:\n  script: echo\n"})
    assert loaded.root.key_locs["job"] == Location(".gitlab-ci.yml", 2, 1)


CONTEXT = {"inputs": {"name": "hello world", "n": 5, "list": ["a"], "path": "$HOME/x"}}


@pytest.mark.parametrize(
    ("block", "value"),
    [
        ("inputs.name", "hello world"),
        ("inputs.n", 5),
        ("inputs.list", ["a"]),
        ("inputs.name | truncate(0,5)", "hello"),
        ("inputs.name | truncate( 6 , 100 )", "world"),
        ("inputs.name | truncate(50,2)", ""),
        ("inputs.path | expand_vars", "/root/x"),
        ("inputs.name | posix_escape", "hello\\ world"),
        ("inputs.path | expand_vars | truncate(1,4) | posix_escape", "root"),
    ],
)
def test_interpolation_functions(block: str, value: object) -> None:
    assert evaluate_block(block, CONTEXT, {"HOME": "/root"}) == (value, [])


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("inputs.n | truncate(0,1)", "error in `truncate` function: invalid input type: "
         "truncate can only be used with string inputs"),
        ("inputs.list | expand_vars", "error in `expand_vars` function: invalid input type: "
         "expand_vars can only be used with string inputs"),
        ("inputs.name | posix_escape | posix_escape | posix_escape | posix_escape",
         "too many functions in interpolation block"),
        ("inputs.name.x", "unknown interpolation key: `x`"),
        ("inputs", "invalid interpolation access pattern"),
    ],
)  # fmt: skip
def test_interpolation_function_errors(block: str, error: str) -> None:
    assert evaluate_block(block, CONTEXT, {}) == (None, [error])


def test_expand_existing_leaves_unknown_variables_alone() -> None:
    text = "$A ${A} %A% $B ${B} $"
    assert expand_existing(text, {"A": "1"}) == "1 1 1 $B ${B} $"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("", "''"), ("a-b_c.d,e:f+g/h@i", "a-b_c.d,e:f+g/h@i"), ("it's $x", "it\\'s\\ \\$x"),
     ("a\nb", "a'\n'b")],
)  # fmt: skip
def test_posix_escape_is_shellwords_shellescape(text: str, escaped: str) -> None:
    assert posix_escape(text) == escaped


def test_expand_vars_uses_the_variables_given_to_load_config(load) -> None:
    files = {
        ".gitlab-ci.yml": "include:\n  - local: tpl.yml\n    inputs:\n      dir: $HOME/$UNSET\n",
        "tpl.yml": "spec:\n  inputs:\n    dir:\n---\n"
        "job:\n  script: cd $[[ inputs.dir | expand_vars ]]\n",
    }
    loaded = load(files, variables={"HOME": "/home/ci"})
    assert loaded.root["job"]["script"] == "cd /home/ci/$UNSET"


def test_a_header_file_still_loads_after_an_earlier_include_failed(load, problems) -> None:
    files = {
        ".gitlab-ci.yml": "include:\n  - missing.yml\n"
        "  - local: tpl.yml\n    inputs: {stage: prod}\n",
        "tpl.yml": TEMPLATE,
    }
    # the header of tpl.yml is still read and checked: both problems are reported
    assert problems(lambda: load(files)) == [
        ".gitlab-ci.yml:2:5: Local file `missing.yml` does not exist!",
        ".gitlab-ci.yml:4:5: `tpl.yml`: `version` input: required value has not been provided",
        ".gitlab-ci.yml:4:14: `tpl.yml`: `stage` input: `prod` cannot be used because it is not "
        "in the list of allowed options",
    ]
    del files["tpl.yml"]
    files["bad.yml"] = "spec: [\n---\njob: {}\n"
    files[".gitlab-ci.yml"] = "include: bad.yml\n"
    (line,) = problems(lambda: load(files))
    assert line.startswith("bad.yml:2:1: `bad.yml`: YAML syntax error: ")
