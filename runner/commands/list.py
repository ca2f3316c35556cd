"""`pyci list`: the jobs this pipeline would create, in pipeline order, without running any.

The plain form prints one aligned line per job; `--json` prints an array of objects (`name`,
`stage`, `when`, `allow_failure`, `needs`, ...), the form scripts and the scenario corpus
compare. `--all` adds the jobs that `rules` or `only`/`except` left out, each with the reason.
When `workflow:rules` create no pipeline, that is said in one line on stderr, the list is
empty and the exit code is 0: a filtered pipeline is an answer, not an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runner.commands.common import add_project_options, project_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list the jobs the pipeline would create",
        description="List the jobs this pipeline would create after workflow and rules.",
    )
    add_project_options(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON array of jobs")
    parser.add_argument(
        "--all", action="store_true", help="also list jobs that rules left out, and why"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from runner.pipeline import NoPipeline, load_pipeline, report_ignored

    opts = project_options(args)
    try:
        pipeline = load_pipeline(opts)
    except NoPipeline as exc:
        print(f"no pipeline: {exc}", file=sys.stderr)
        rows = [excluded_entry(job) for job in exc.excluded] if args.all else []
        if args.json:
            print_json(rows)
        elif rows:
            print_table(rows)
        return 0
    report_ignored(pipeline, verbose=args.verbose)
    from runner.child_plan import with_planned_children

    rows = [job_entry(job) for job in with_planned_children(opts, pipeline.facts, pipeline.jobs)]
    if args.all:
        rows += [excluded_entry(job) for job in pipeline.excluded]
    if args.json:
        print_json(rows)
    else:
        print_table(rows)
    return 0


def job_entry(job: Any) -> dict[str, Any]:
    """The JSON object of one created job (a `runner.core.jobspec.JobSpec`)."""
    allow: Any = job.allow_failure.allowed
    if job.allow_failure.exit_codes:
        allow = {"exit_codes": list(job.allow_failure.exit_codes)}
    entry: dict[str, Any] = {
        "name": job.name,
        "stage": job.stage,
        "when": job.when,
        "allow_failure": allow,
        "needs": None if job.needs is None else [need.job for need in job.needs],
    }
    if job.dependencies is not None:
        entry["dependencies"] = list(job.dependencies)
    if job.start_in is not None:
        entry["start_in"] = job.start_in
    if job.node_total is not None:
        entry["parallel"] = {"index": job.node_index, "total": job.node_total}
    return entry


def excluded_entry(job: Any) -> dict[str, Any]:
    return {"name": job.name, "stage": job.stage, "excluded": True, "reason": job.reason}


def print_json(rows: list[dict[str, Any]]) -> None:
    import json  # ~3 ms of import, for --json only

    print(json.dumps(rows, indent=2))


def print_table(rows: list[dict[str, Any]]) -> None:
    lines = [("STAGE", "JOB", "WHEN", "NEEDS")]
    for row in rows:
        if row.get("excluded"):
            lines.append((row["stage"], row["name"], "excluded", row["reason"]))
            continue
        needs = "-" if row["needs"] is None else ", ".join(row["needs"]) or "(none)"
        when = row["when"] + (" (allow failure)" if row["allow_failure"] else "")
        lines.append((row["stage"], row["name"], when, needs))
    widths = [max(len(line[col]) for line in lines) for col in range(3)]
    for line in lines:
        cells = [line[col].ljust(widths[col]) for col in range(3)]
        print("  ".join([*cells, line[3]]).rstrip())
