"""`pyci fetch-includes`: fetch every server-side include of the pipeline into pyci's cache,
ignoring what the cache holds, so that later runs (and `--offline` ones) read them from there.
"""

from __future__ import annotations

import argparse
import dataclasses

from runner.commands.common import add_project_options, project_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch-includes",
        help="fetch the pipeline's project/template/component/remote includes into the cache",
        description="Fetch every include that lives on a GitLab server (project, template, "
        "component, remote) again, into pyci's cache under $PYCI_HOME/includes.",
    )
    add_project_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from runner.pipeline import load_expanded

    opts = project_options(args)
    if opts.includes.offline:
        from runner.core.errors import UsageError

        raise UsageError("fetch-includes: --offline leaves nothing to fetch")
    includes = dataclasses.replace(opts.includes, refresh=True)
    expanded = load_expanded(dataclasses.replace(opts, includes=includes))
    print(f"{len(expanded.fetched)} included file(s) fetched into the cache")
    for name in expanded.fetched:
        print(f"  {name}")
    return 0
