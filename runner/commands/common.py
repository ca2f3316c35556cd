"""Options shared by the subcommands that read a pipeline: -f/--file, -C/--directory, --variable."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from runner.errors import UsageError


@dataclass(frozen=True)
class ProjectOptions:
    """Where the project is and what the user set on the command line."""

    directory: Path  # the repository (or plain folder) the pipeline runs for
    file: Path  # the root .gitlab-ci.yml, absolute
    variables: dict[str, str]  # --variable KEY=VALUE, in order; later ones win


def add_project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-C",
        "--directory",
        default=".",
        metavar="DIR",
        help="run as if pyci was started in DIR (default: the current directory)",
    )
    parser.add_argument(
        "-f",
        "--file",
        default=".gitlab-ci.yml",
        metavar="FILE",
        help="the pipeline file, relative to DIR (default: .gitlab-ci.yml)",
    )
    parser.add_argument(
        "--variable",
        "-v",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a pipeline variable (highest precedence, like a variable of a manual run)",
    )


def project_options(args: argparse.Namespace) -> ProjectOptions:
    directory = Path(args.directory).resolve()
    if not directory.is_dir():
        raise UsageError(f"-C {args.directory}: no such directory")
    try:
        file = (directory / args.file).resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError is Python 3.11's word)
        raise UsageError(f"{directory / args.file}: cannot read the file: a symbolic link loops")
    if not file.is_file():
        if file.exists():  # a directory, a FIFO (never opened: reading it would block), ...
            raise UsageError(f"{file}: not a regular file (use -f to name the pipeline file)")
        raise UsageError(f"{file}: no such file (use -f to name the pipeline file)")
    return ProjectOptions(directory, file, parse_variables(args.variable))


def parse_variables(items: list[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum():
            raise UsageError(f"--variable {item!r}: expected KEY=VALUE with a valid name")
        variables[key] = value
    return variables
