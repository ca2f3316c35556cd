"""`pyci` command line: parse, dispatch to a subcommand, map expected errors to exit codes.

Each subcommand lives in its own module under `runner.commands` and exposes
`register(subparsers)`, which adds its parser and sets `handler` (a function taking the parsed
arguments and returning an exit code). Exit codes: 0 ok/passed, 1 invalid/failed,
2 usage or configuration error where a command says so, 130 interrupted.
Expected errors (`PyciError`) become one line per problem on stderr; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import runner.commands
from runner.errors import ConfigError, PyciError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyci",
        description="Run GitLab CI pipelines locally, each job in its own container.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(runner.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"runner.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return getattr(args, "config_error_exit", exc.exit_code)
    except PyciError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
