"""A job's variables, from every source, in GitLab's precedence order (lowest first).

GitLab documents the order (highest wins): pipeline variables (here `--variable`), project /
group / instance variables (here the variables files and `--gitlab-variables`, runner.vars),
dotenv reports (at run time), job variables, global YAML variables, predefined variables.
Within the YAML: `workflow:rules:variables` override the global ones (they are merged into the
root variables before jobs inherit them, so `inherit:variables` filters both), a
`parallel:matrix` combination overrides the job's own `variables:`, and `rules:variables` of
the matching rule override both. So the list is:

    predefined pipeline < predefined job < globals (+ workflow) < job (+ matrix) < rules
    < settings (instance < group < project < user file < project file) < CLI

Later entries win; values stay unexpanded (the build expands them, as the runner does), and
`expand: false` becomes `raw`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from runner.core.jobspec import Variable


def to_variable(key: str, value: Any) -> Variable:
    """One YAML variable: a plain value, or a long form with `value`/`expand` (model or dict)."""
    if hasattr(value, "value"):  # runner.config.models VariableConfig
        raw = getattr(value, "expand", True) is False
        return Variable(key, _text(value.value), raw=raw)
    if isinstance(value, Mapping):
        return Variable(key, _text(value.get("value")), raw=value.get("expand", True) is False)
    return Variable(key, _text(value))


def to_variables(variables: Mapping[str, Any] | None) -> list[Variable]:
    return [to_variable(key, value) for key, value in (variables or {}).items()]


def as_variables(values: Any) -> list[Variable]:
    """Predefined variables as given (a mapping or Variables) to a list of Variables."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [Variable(key, _text(value)) for key, value in values.items()]
    return [value if isinstance(value, Variable) else Variable(*value) for value in values]


def inherited_globals(globals_: Mapping[str, Any], inherit: Any) -> dict[str, Any]:
    """GitLab's `inherit:variables`: true (all), false (none) or a list of names."""
    if inherit is None or inherit is True:
        return dict(globals_)
    if inherit is False:
        return {}
    allowed = set(inherit)
    return {key: value for key, value in globals_.items() if key in allowed}


def merged(*layers: Iterable[Variable]) -> tuple[Variable, ...]:
    """All layers in order, each key once: a later definition removes the earlier one.

    The list stays in precedence order (the winner sits where its layer puts it) and holds one
    entry per key, so `JobSpec.variable()` and a plain dict built from it agree.
    """
    return tuple(layered(*layers).values())


def layered(
    *layers: Iterable[Variable], base: dict[str, Variable] | None = None
) -> dict[str, Variable]:
    """`merged` as a key -> Variable dict; `base` (copied, not changed) is the lowest layer."""
    result = dict(base) if base else {}
    for layer in layers:
        for variable in layer:
            if variable.key in result:
                del result[variable.key]
            result[variable.key] = variable
    return result


def as_mapping(variables: Iterable[Variable]) -> dict[str, str]:
    return {variable.key: variable.value for variable in variables}


def pipeline_source(cli: Mapping[str, str]) -> str:
    """`push`, unless `--variable CI_PIPELINE_SOURCE=...` says otherwise (then the predefined
    variables follow it: a `merge_request_event` pipeline gets the merge request ones)."""
    return cli.get("CI_PIPELINE_SOURCE") or "push"


def deployment_variables(environment: Any, variables: Mapping[str, str]) -> list[Variable]:
    """GitLab's CI_ENVIRONMENT_* for a job with `environment:` (its name expanded)."""
    from runner.evaluate.variables import expand

    name = expand(environment.name, variables)
    values = {
        "CI_ENVIRONMENT_NAME": name,
        "CI_ENVIRONMENT_SLUG": environment_slug(name),
        "CI_ENVIRONMENT_ACTION": environment.action,
        "CI_ENVIRONMENT_URL": expand(environment.url, variables) if environment.url else None,
        "CI_ENVIRONMENT_TIER": environment.deployment_tier,
    }
    return [Variable(key, value) for key, value in values.items() if value is not None]


def environment_slug(name: str) -> str:
    """GitLab's `Gitlab::Slug::Environment`: lowercase letters, digits and single dashes,
    starting with a letter, at most 24 characters. Whenever the slug is not the name itself
    (or is too long) it is cut to 17 characters and given a suffix from the name's SHA-256,
    so `foo.bar` and `foo-bar` keep distinct slugs."""
    slug = re.sub(r"[^a-z0-9]", "-", name.lower())
    if not re.match(r"[a-z]", slug):
        slug = "env-" + slug
    slug = re.sub(r"-{2,}", "-", slug)
    if len(slug) <= 24 and slug == name:
        return slug.removesuffix("-")
    slug = slug[:17]
    if not slug.endswith("-"):
        slug += "-"
    return slug + _slug_suffix(name)


def _slug_suffix(name: str) -> str:
    """The last 6 base-36 digits of the name's SHA-256 (GitLab's `to_i(16).to_s(36).last(6)`)."""
    return _base36(int(hashlib.sha256(name.encode()).hexdigest(), 16))[-6:]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while number:
        number, remainder = divmod(number, 36)
        text = digits[remainder] + text
    return text or "0"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
