"""Options shared by the subcommands that read a pipeline: -f/--file, -C/--directory,
--variable, --verbose, and where server-side includes come from."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.config.remote_includes import IncludeOptions
from runner.core.errors import UsageError
from runner.project import ProjectOptions
from runner.vars.source import SettingsSource


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
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="say more in notes (which jobs use the keywords that have no effect locally)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="read project/template/component/remote includes from pyci's cache only",
    )
    parser.add_argument(
        "--gitlab-url",
        metavar="URL",
        help="the GitLab server for includes (default: $PYCI_GITLAB_URL, else the git remote's)",
    )
    parser.add_argument(
        "--gitlab-variables",
        action="store_true",
        help="also use the CI/CD variables of the project and its groups on the GitLab server "
        "(kept in memory only)",
    )
    parser.add_argument(
        "--include-project",
        action="append",
        default=[],
        metavar="GROUP/PROJECT=PATH",
        help="read include:project and components of GROUP/PROJECT from a local checkout",
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
    includes = IncludeOptions(
        offline=args.offline,
        gitlab_url=args.gitlab_url,
        local_projects=_include_projects(args.include_project, directory),
    )
    settings = SettingsSource(
        directory, from_server=args.gitlab_variables, gitlab_url=args.gitlab_url
    )
    return ProjectOptions(directory, file, parse_variables(args.variable), includes, settings)


def _include_projects(items: list[str], directory: Path) -> dict[str, Path]:
    projects: dict[str, Path] = {}
    for item in items:
        project, sep, path = item.partition("=")
        project = project.strip("/")
        if not sep or "/" not in project or not path:
            raise UsageError(f"--include-project {item!r}: expected GROUP/PROJECT=PATH")
        checkout = (directory / path).resolve()
        if not checkout.is_dir():
            raise UsageError(f"--include-project {item!r}: {checkout} is not a directory")
        projects[project] = checkout
    return projects


def parse_variables(items: list[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum():
            raise UsageError(f"--variable {item!r}: expected KEY=VALUE with a valid name")
        variables[key] = value
    return variables
