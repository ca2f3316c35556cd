"""CI_ENVIRONMENT_SLUG as GitLab's `Gitlab::Slug::Environment` makes it. The table is GitLab's
own spec (spec/lib/gitlab/slug/environment_spec.rb), where the name's SHA-256 is stubbed to
64 `a`s, whose suffix is `q517sa`."""

from __future__ import annotations

import hashlib

import pytest

from runner.plan import job_variables
from runner.plan.job_variables import environment_slug

GITLAB_CASES = {
    "staging-12345678901234567": "staging-123456789-q517sa",
    "9-staging-123456789012345": "env-9-staging-123-q517sa",
    "staging-1234567890123456": "staging-1234567890123456",
    "staging-1234567890123456-": "staging-123456789-q517sa",
    "production": "production",
    "PRODUCTION": "production-q517sa",
    "review/1-foo": "review-1-foo-q517sa",
    "1-foo": "env-1-foo-q517sa",
    "1/foo": "env-1-foo-q517sa",
    "foo-": "foo",
    "foo--bar": "foo-bar-q517sa",
    "foo**bar": "foo-bar-q517sa",
    "*-foo": "env-foo-q517sa",
    "staging-12345678-": "staging-12345678",
    "staging-12345678-01234567": "staging-12345678-q517sa",
    "": "env-q517sa",
}


class _SixtyFourAs:
    def hexdigest(self) -> str:
        return "a" * 64


def test_the_suffix_of_64_as_is_gitlabs(monkeypatch):
    monkeypatch.setattr(hashlib, "sha256", lambda _data: _SixtyFourAs())
    assert job_variables._slug_suffix("anything") == "q517sa"


@pytest.mark.parametrize(("name", "slug"), GITLAB_CASES.items())
def test_gitlabs_slug_table(monkeypatch, name, slug):
    monkeypatch.setattr(job_variables, "_slug_suffix", lambda _name: "q517sa")
    assert environment_slug(name) == slug


def test_distinct_names_keep_distinct_slugs():
    assert environment_slug("foo.bar") != environment_slug("foo-bar") == "foo-bar"
    assert len(environment_slug("review/" + "x" * 100)) == 24
