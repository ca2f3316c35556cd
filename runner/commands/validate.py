"""`pyci validate`: is the pipeline valid? Every problem on its own line, exit 0 or 1.

The default form does all that `pyci run` would do before starting a job: includes, extends,
the schema, stages, needs, dependencies, cycles, and (for the current branch and variables)
workflow and rules, whose errors GitLab also reports when it creates a pipeline.
`--shape-only FILE...` checks only the shape of each file on its own: no include is read and
no job is compared with another, so a partial file (a template, an included fragment) can be
checked by an editor or a pre-commit hook.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.commands.common import add_project_options, project_options
from runner.core.errors import ConfigError, Problem, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check the pipeline configuration",
        description="Check the pipeline configuration and list every problem found.",
    )
    add_project_options(parser)
    parser.add_argument(
        "--shape-only",
        action="store_true",
        help="check only the shape of each FILE alone (no includes, no cross-job checks)",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="files for --shape-only")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.shape_only:
        return check_shapes(args)
    if args.files:
        raise UsageError("FILE arguments need --shape-only (use -f to name the pipeline file)")
    from runner.pipeline import NoPipeline, load_pipeline, report_ignored

    opts = project_options(args)
    try:
        pipeline = load_pipeline(opts)
    except NoPipeline as exc:
        print(f"{_shown(opts.file, opts.directory)}: valid (no pipeline: {exc})")
        return 0
    report_ignored(pipeline, verbose=args.verbose)
    print(f"{_shown(opts.file, opts.directory)}: valid ({_count(len(pipeline.jobs))})")
    return 0


def check_shapes(args: argparse.Namespace) -> int:
    from runner.config.include import load_single_file
    from runner.config.validate import validate_shape

    directory = Path(args.directory).resolve()
    names = args.files or [args.file]
    problems: list[Problem] = []
    for name in names:
        try:
            path = (directory / name).resolve()
        except (RuntimeError, OSError):  # a symlink loop (RuntimeError is Python 3.11's word)
            raise UsageError(f"{name}: cannot read the file: a symbolic link loops")
        if not path.is_file():
            raise UsageError(f"{name}: no such file")
        relative = _shown(path, directory)
        try:
            document = load_single_file(directory, relative)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(validate_shape(document, relative))
    if problems:
        raise ConfigError(problems)
    for name in names:
        print(f"{name}: valid shape")
    return 0


def _shown(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory))
    except ValueError:
        return str(path)


def _count(jobs: int) -> str:
    return f"{jobs} job" if jobs == 1 else f"{jobs} jobs"
