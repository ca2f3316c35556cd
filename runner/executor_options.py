"""The executor options of `pyci run` and `pyci shell`: flags, defaults, and their mapping to
`executors.factory.ExecutorOptions` (one place, so both commands accept the same)."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runner.core.errors import UsageError

EXECUTORS = ("shell", "container")
NETWORKS = ("bridge", "host", "none")
PULL_POLICIES = ("always", "if-not-present", "never")


@functools.cache
def default_executor() -> tuple[str, str]:
    """(`container` or `shell`, why): containers when this process may make them."""
    from executors.container.probe import container_unavailable_reason

    reason = container_unavailable_reason()
    if reason is None:
        return "container", "root with namespaces and overlayfs"
    return "shell", reason


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("executor")
    kind, why = default_executor()
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where jobs run (default: container when pyci runs as root and the kernel "
        f"allows namespaces and overlayfs, else shell; here: {kind}, as {why})",
    )
    group.add_argument(
        "--default-image",
        metavar="REF",
        help="image of jobs without image: (default: the host's root, read-only)",
    )
    group.add_argument(
        "--network", choices=NETWORKS, default="bridge", help="container network (default: bridge)"
    )
    group.add_argument(
        "--memory",
        metavar="SIZE",
        help="memory limit per container, e.g. 512m (0: none); jobs may only ask for less",
    )
    group.add_argument(
        "--cpus",
        metavar="N",
        help="CPU limit per container, e.g. 1.5 (0: none); jobs may only ask for less",
    )
    group.add_argument(
        "--pids-limit",
        metavar="N",
        help="process limit per container (0 or -1: none); jobs may only ask for less",
    )
    group.add_argument(
        "--no-new-privileges",
        action="store_true",
        help="containers cannot gain privileges (setuid, file capabilities)",
    )
    group.add_argument(
        "--pull-policy",
        choices=PULL_POLICIES,
        default="if-not-present",
        help="when to pull images without pull_policy: (default: if-not-present)",
    )
    group.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="URL",
        help="Docker Hub mirror, tried first (repeatable; default: $PYCI_REGISTRY_MIRROR)",
    )
    group.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="registry that may be reached over plain HTTP (repeatable; loopback always may)",
    )


def chosen_executor(args: argparse.Namespace) -> str:
    return args.executor or default_executor()[0]


def executor_options(args: argparse.Namespace, state_dir: Path):
    """`ExecutorOptions` from the parsed flags; a bad value is a one-line usage error."""
    from executors.container import limits
    from executors.factory import ExecutorOptions

    memory = _limit("--memory", args.memory, limits.memory_limit)
    cpus = _limit("--cpus", args.cpus, limits.cpus_limit)
    pids = _limit("--pids-limit", args.pids_limit, limits.pids_limit)
    mirrors = tuple(args.registry_mirror)
    if not mirrors and os.environ.get("PYCI_REGISTRY_MIRROR"):
        from executors.images.pull import mirrors_from_env  # httpx: only when needed

        mirrors = mirrors_from_env()
    return ExecutorOptions(
        default_image=args.default_image or None,
        network=args.network,
        memory=memory,
        cpus=cpus,
        pids_limit=pids,
        no_new_privs=args.no_new_privileges,
        pull_policy=args.pull_policy,
        registry_mirrors=mirrors,
        insecure_registries=tuple(args.insecure_registry),
        service_log_dir=state_dir / "logs",
    )


_Limit = TypeVar("_Limit", int, float)


def _limit(flag: str, text: str | None, parse: Callable[[str], _Limit | None]) -> _Limit | None:
    """A limit flag's value (Docker's syntax; None: no limit); a bad one is a usage error."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:  # limits.LimitError
        raise UsageError(f"{flag} {text}: {exc}") from None
