"""`pyci show JOB`: one job as GitLab sees it after merging, printed as YAML.

The job is shown after `include`, anchors, `!reference`, `extends` and `default:` are applied,
with the global `variables:` it inherits (per `inherit:variables`) merged under its own, which is
what a user wants when asking "what will this job actually do". A hidden job (`.template`) can be
shown too. A name made by `parallel` (`test 1/3`, `test: [a]`) shows the job it came from with
that instance's matrix values among its variables and CI_NODE_INDEX/CI_NODE_TOTAL in a comment.
"""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any

from runner.commands.common import add_project_options, project_options
from runner.core.errors import UsageError

# `name 1/3` and `name: [a, b]` are names made by `parallel`; the configured name comes first
_INSTANCE_NAME = re.compile(r"^(?P<base>.+?)(?: \d+/\d+|: \[.*\])$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "show",
        help="print one job, fully expanded, as YAML",
        description="Print one job after include, extends, default and !reference, as YAML.",
    )
    add_project_options(parser)
    parser.add_argument("job", metavar="JOB", help="the job to show")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from runner.pipeline import load_expanded

    opts = project_options(args)
    expanded = load_expanded(opts)
    name, config = find_job(args.job, expanded.jobs, expanded.hidden)
    job = with_inherited_variables(config, expanded.globals)
    instance = parallel_instance(args.job, job) if name != args.job else None
    if name != args.job and instance is None:
        raise UsageError(f"no job named {args.job!r} in the pipeline (see pyci list --all)")
    if instance is not None:
        name = instance.name
        job = {key: value for key, value in job.items() if key != "parallel"}
        job["variables"] = {**(job.get("variables") or {}), **instance.matrix}
        print(f"# CI_NODE_INDEX={instance.index} CI_NODE_TOTAL={instance.total}")
    document = {name: plain(job)}
    print(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100), end="")
    return 0


def parallel_instance(wanted: str, job: dict[str, Any]) -> Any:
    """The parallel instance of `job` named `wanted` (runner.plan.matrix.Instance), or None."""
    from runner.plan.matrix import expand_job

    parallel = job.get("parallel")
    count = parallel if isinstance(parallel, int) and not isinstance(parallel, bool) else None
    matrix = parallel.get("matrix") if isinstance(parallel, dict) else None
    base = _INSTANCE_NAME.match(wanted)
    if base is None or not (count or matrix):
        return None
    for instance in expand_job(base["base"], count, matrix):
        if instance.name == wanted:
            return instance
    return None


def find_job(
    wanted: str, jobs: dict[str, Any], hidden: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    for table in (jobs, hidden):
        if wanted in table:
            return wanted, table[wanted]
    match = _INSTANCE_NAME.match(wanted)
    if match and match["base"] in jobs:
        return match["base"], jobs[match["base"]]
    close = difflib.get_close_matches(wanted, [*jobs, *hidden], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UsageError(f"no job named {wanted!r} in the pipeline{hint}")


def with_inherited_variables(job: dict[str, Any], globals_: dict[str, Any]) -> dict[str, Any]:
    """The job with the global variables it inherits placed before its own."""
    inherited = inherited_variables(job, globals_.get("variables") or {})
    if not inherited:
        return job
    merged = dict(job)
    merged["variables"] = {**inherited, **(job.get("variables") or {})}
    return merged


def inherited_variables(job: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    """GitLab's `inherit:variables`: true (all), false (none) or a list of names."""
    inherit = job.get("inherit") or {}
    choice = inherit.get("variables", True) if isinstance(inherit, dict) else True
    if choice is True:
        return dict(variables)
    if choice is False:
        return {}
    return {key: value for key, value in variables.items() if key in set(choice)}


def plain(value: Any) -> Any:
    """Plain dicts and lists (the location-carrying subclasses do not dump as YAML)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
