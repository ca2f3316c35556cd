"""The summary pyci prints without rich on a pipe or a file is, character for character, what
rich prints there; where rich would wrap, rich draws it."""

from __future__ import annotations

import io
import random
import string

import pytest
from rich.console import Console

from runner.events import JobOutcome
from runner.report.summary import PLAIN_WIDTH, plain_summary, print_summary

STATUSES = ["success", "failed", "canceled", "skipped", "manual", "created"]
REASONS = [None, "script_failure", "job_execution_timeout", "runner_system_failure"]


def drawn_by_rich(rows, status, duration) -> str:
    out = io.StringIO()
    console = Console(file=out, width=PLAIN_WIDTH, highlight=False)  # no terminal: no colour
    print_summary(console, rows, status, duration)
    return out.getvalue()


def random_rows(rng: random.Random) -> list[tuple[str, str, JobOutcome]]:
    def word(longest: int) -> str:
        alphabet = string.ascii_letters + string.digits + "-_:/ [],."
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, longest))).strip() or "x"

    rows = []
    for _ in range(rng.randint(1, 8)):
        outcome = JobOutcome(
            rng.choice(STATUSES),
            exit_code=rng.choice([None, 0, 1, 137]),
            failure_reason=rng.choice(REASONS),
            allowed_failure=rng.random() < 0.3,
            duration=rng.choice([0.0, 0.04, 3.5, 75.2, 4000.0]),
            attempts=rng.choice([1, 1, 2]),
            coverage=rng.choice([None, None, "87.5"]),
            message=rng.choice([None, None, word(40)]),
        )
        rows.append((word(rng.choice([10, 40, 90])), word(12), outcome))
    return rows


@pytest.mark.parametrize("seed", range(300))
def test_plain_summary_is_what_rich_draws(seed):
    rng = random.Random(seed)
    rows = random_rows(rng)
    status = rng.choice(["success", "success_with_warnings", "failed", "canceled", "skipped"])
    plain = plain_summary(rows, status, 12.5)
    if plain is not None:
        assert plain == drawn_by_rich(rows, status, 12.5)


def test_most_summaries_take_the_plain_way():
    drawn = [plain_summary(random_rows(random.Random(s)), "success", 1.0) for s in range(300)]
    assert sum(text is not None for text in drawn) > 150


def test_too_wide_or_not_ascii_is_left_to_rich():
    wide = [("j" * 150, "test", JobOutcome("success", 0, duration=1.0))]
    accents = [("déploiement", "test", JobOutcome("success", 0, duration=1.0))]
    assert plain_summary(wide, "success", 1.0) is None
    assert plain_summary(accents, "success", 1.0) is None


def test_matrix_job_names_keep_their_brackets():
    rows = [("build: [linux, amd64]", "build", JobOutcome("success", 0, duration=1.0))]
    drawn = drawn_by_rich(rows, "success", 1.0)
    assert "build: [linux, amd64]" in drawn
    assert plain_summary(rows, "success", 1.0) == drawn
