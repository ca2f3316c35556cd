"""The `rules:if` language beyond GitLab's own cases: precedence, RE2 semantics, errors."""

import pytest

from runner.evaluate.expression import ExpressionError, Regexp, check_syntax, evaluate, matches

VARS = {"BRANCH": "feature/login", "EMPTY": "", "SPACES": "   ", "PATTERN": "/^feat/"}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # && binds tighter than ||, comparisons tighter than both
        ('$BRANCH == "x" || $BRANCH == "feature/login" && $EMPTY == ""', True),
        ('($BRANCH == "x" || $BRANCH == "feature/login") && $EMPTY == "nope"', False),
        ('"a" == "a" == true', True),  # left-associative: ("a" == "a") == true
        ("$BRANCH =~ /^FEATURE/i", True),
        ("$BRANCH =~ /login$/", True),
        ("$BRANCH =~ $PATTERN", True),
        ("$BRANCH !~ $PATTERN", False),
        ("$BRANCH =~ /feat/ && $BRANCH =~ /log/", True),
        ("true", True),
        ("false || $EMPTY", False),
        ("$SPACES", False),  # blank text is not present
        ("$BRANCH == 'feature/login'", True),
        ("$BRANCH=~/^feature\\/l/", True),
    ],
)
def test_truthiness(expr, expected):
    assert matches(expr, VARS) is expected


def test_plain_string_on_the_right_is_searched_for_the_left_text():
    # GitLab runs "abcdef".scan(text): true when the left value occurs in the right string
    assert matches('$X =~ "abcdef"', {"X": "cde"})
    assert not matches('$X =~ "abcdef"', {"X": "zzz"})
    assert matches('$X !~ "abcdef"', {"X": "zzz"})


def test_undefined_pattern_variable_never_matches():
    assert not matches("$A =~ $NOPE", {"A": "x"})
    assert matches("$A !~ $NOPE", {"A": "x"})


def test_inputs_are_read_from_the_inputs_mapping():
    variables = {"inputs": {"count": 3, "flag": True}}
    assert evaluate("$[[ inputs.flag ]]", variables) is True
    assert evaluate("$[[inputs.count]]", variables) == 3
    assert evaluate("$[[ inputs.missing ]]", variables) is None


def test_a_lone_pattern_evaluates_to_a_regexp_value():
    value = evaluate("/ab+c/i", {})
    assert value == Regexp("ab+c", "i")
    assert matches("/ab+c/", {})


class TestRe2Semantics:
    def test_dollar_is_end_of_text_not_before_a_final_newline(self):
        assert not matches("$X =~ /abc$/", {"X": "abc\n"})
        assert matches("$X =~ /abc$/m", {"X": "abc\nnext"})

    def test_perl_classes_are_ascii(self):
        assert not matches("$X =~ /^\\d$/", {"X": "٣"})  # Arabic-Indic digit three
        assert matches("$X =~ /^\\w+$/", {"X": "ab_9"})
        assert not matches("$X =~ /\\w/", {"X": "é"})

    def test_dot_stops_at_newline_unless_s(self):
        assert not matches("$X =~ /a.b/", {"X": "a\nb"})
        assert matches("$X =~ /a.b/s", {"X": "a\nb"})

    def test_ungreedy_flag_swaps_quantifiers(self):
        from runner.evaluate.re2syntax import compile_re2

        assert compile_re2("a+", "U").match("aaa").group(0) == "a"
        assert compile_re2("a+?", "U").match("aaa").group(0) == "aaa"

    def test_mid_pattern_flags_last_to_the_end_of_their_group(self):
        assert matches("$X =~ /^a(?i)b(c)D$/", {"X": "aBcd"})
        assert not matches("$X =~ /^a((?i)b)c$/", {"X": "aBC"})

    def test_named_groups_hex_and_quoting(self):
        assert matches("$X =~ /(?<word>\\x{41})\\Q.*\\E/", {"X": "A.*"})
        assert matches("$X =~ /[[:digit:]]{2,}/", {"X": "v10"})
        assert matches("$X =~ /a{,2}/", {"X": "a{,2}"})  # not a repetition in RE2

    @pytest.mark.parametrize(
        "pattern", ["/(?=a)b/", "/(a)\\1/", "/a{1001}/", "/(ab/", "/\\Z$/", "/a**/"]
    )
    def test_what_re2_rejects_is_a_syntax_error(self, pattern):
        assert check_syntax(f"$X =~ {pattern}") is not None
        assert not matches(f"$X =~ {pattern}", {"X": "ab"})


@pytest.mark.parametrize(
    "expr",
    [
        "$A = 1",
        "$A ==",
        "== $A",
        "($A",
        "$A)",
        "$A $B",
        "",
        "   ",
        "$A =~ /a/",  # GitLab's grammar needs two characters between the slashes
        '$A == "unterminated',
        "$A && " * 50 + "$A",  # 101 tokens
    ],
)
def test_syntax_errors_are_reported_and_never_match(expr):
    message = check_syntax(expr)
    assert message
    assert not matches(expr, {"A": "1", "B": "2"})
    with pytest.raises(ExpressionError):
        evaluate(expr, {"A": "1"})


def test_valid_expressions_have_no_syntax_error():
    assert check_syntax('$CI_COMMIT_BRANCH == "main" && $CI_PIPELINE_SOURCE != "schedule"') is None
    assert check_syntax("$A && " * 49 + "$A") is None  # 99 tokens: GitLab's maximum


def test_error_message_names_the_column():
    assert "column 4" in check_syntax("$A = 1")


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("/pattern/", "pattern"),
        ("/pattern/im", "pattern"),
        ("/some .* \\/ pattern/", "some .* / pattern"),  # \/ is an escaped boundary
        ("/some numeric \\/$ pattern/", "some numeric /$ pattern"),
        ("/some numeric \\$ pattern/", "some numeric \\$ pattern"),  # only / is unescaped
    ],
)
def test_pattern_tokens(text, source):
    assert evaluate(text, {}).source == source


def test_pattern_token_ends_at_the_first_unescaped_slash():
    # `/some .* /` is the whole pattern; what follows is not a token
    assert evaluate("/some .* / == /x y/", {}) is False
    assert check_syntax("/some .* / pattern/") is not None
    assert check_syntax("//") is not None
    assert check_syntax("$X =~ / some ( thin/i") is not None
