"""`pyci` command line: parse, dispatch to a subcommand, map expected errors to exit codes.

Each subcommand lives in its own module under `runner.commands` and exposes
`register(subparsers)`, which adds its parser and sets `handler` (a function taking the parsed
arguments and returning an exit code). Exit codes, the same from every command: 0 ok/passed,
1 failed or an invalid configuration (GitLab, too, makes a failed pipeline of an invalid
file), 2 a usage error (the command line), 128 + the signal when a signal ended
the run (130 SIGINT, 143 SIGTERM, 129 SIGHUP), 141 when the reader of the output went away.
Expected errors (`PyciError`) become one line per problem on stderr; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from signal import SIGPIPE
from typing import NoReturn

import runner.commands
from runner.core.errors import ConfigError, PyciError


def command_modules() -> list[str]:
    """Names of the subcommand modules, found without importing them."""
    names = (m.name for m in pkgutil.iter_modules(runner.commands.__path__))
    return sorted(n for n in names if not n.startswith("_") and n != "common")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand is imported and registered.

    Importing every command costs hundreds of milliseconds (rich, pydantic, the scheduler), so
    `pyci list` must not pay for `pyci run`: when the command is known from argv, only its
    module is loaded. `pyci --help` and unknown commands still see all of them.
    """
    parser = argparse.ArgumentParser(
        prog="pyci",
        description="Run GitLab CI pipelines locally, each job in its own container.",
    )
    parser.add_argument("--version", action=VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in [only] if only else command_modules():
        module = importlib.import_module(f"runner.commands.{name}")
        module.register(subparsers)
    return parser


class VersionAction(argparse.Action):
    """`--version`: argparse's own action needs the text up front, which would read pyci's
    package metadata on every start, to print it on almost none."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        print(f"pyci {installed_version()}")
        parser.exit()


def installed_version() -> str:
    """pyci's version as its package metadata has it (pyproject.toml, when installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyci")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv, when it is one of ours (the only global option,
    `--version`, takes no value)."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    module = first.replace("-", "_") if first else None  # `fetch-includes` is fetch_includes
    return module if module in command_modules() else None


# Set by git for its hooks: a hook that runs pyci would otherwise have git (in pyci and in the
# jobs) clone, check out and index the hook's repository, not the project's (runner/gitrepo.py)
INHERITED_GIT_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for name in INHERITED_GIT_VARIABLES:  # pyci finds the repository from the project dir
        os.environ.pop(name, None)
    parser = build_parser(requested_command(argv))
    args = parser.parse_args(argv)
    try:
        code = int(args.handler(args))
        # flushed here, not at exit, so that a reader gone early is met by the handler below
        sys.stdout.flush()
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exc.exit_code
    except PyciError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`pyci list | head`): stop quietly, as if killed by SIGPIPE;
        # stdout goes to /dev/null so that flushing what is left cannot fail again
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + SIGPIPE


def run() -> NoReturn:
    """The `pyci` command: `main()`, then a normal exit (threads joined, atexit handlers run)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
