"""`pyci runner …`: take jobs from a GitLab server, as gitlab-runner does (runner mode).

`pyci runner run-single --url URL --token TOKEN --default-image REF` serves one runner without
a config file and exits after `--max-builds` jobs or `--wait-timeout` idle seconds. Jobs run in
containers, each with the isolation of a local run; since they come from a server they are
untrusted, so runner mode never runs one over the host's root: a job without `image:` gets
`--default-image`, which is required. SIGTERM and SIGINT stop asking for jobs and cancel the
running ones (GitLab is told they failed); SIGQUIT lets them finish. Exit 0 when stopped or
done; 1 when the server refused the token; 2 on usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from runner.core.errors import PyciError, UsageError
from runner.runnermode.config import EXECUTORS, NETWORKS

if TYPE_CHECKING:
    from runner.runnermode.config import RunnerEntry
    from runner.runnermode.service import RunnerService


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runner",
        help="take jobs from a GitLab server (runner mode)",
        description="Run jobs that a GitLab server hands out, like gitlab-runner.",
    )
    commands = parser.add_subparsers(dest="runner_command", metavar="COMMAND", required=True)
    single = commands.add_parser(
        "run-single",
        help="serve one runner given on the command line (no config file)",
        description="Ask URL for jobs with TOKEN and run them, until --max-builds jobs ran, "
        "--wait-timeout seconds passed without one, or SIGTERM/SIGINT (cancel running jobs) "
        "or SIGQUIT (let them finish).",
    )
    add_runner_arguments(single, token_help="the runner's authentication token")
    single.add_argument("--max-builds", type=int, metavar="N", help="stop after N jobs")
    single.add_argument(
        "--wait-timeout", type=float, metavar="S", help="stop after S seconds without a job"
    )
    single.add_argument(
        "--concurrent", type=int, default=1, metavar="N", help="run up to N jobs at once"
    )
    single.add_argument(
        "--check-interval",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds between job requests when there is none (default: 3)",
    )
    single.add_argument(
        "--builds-dir", metavar="DIR", help="repositories and jobs' state (default: see docs)"
    )
    single.add_argument("--cache-dir", metavar="DIR", help="jobs' caches (default: see docs)")
    single.add_argument("--network", choices=NETWORKS, default="bridge", help="container network")
    single.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="registry that may be reached over plain HTTP (loopback always may)",
    )
    single.set_defaults(handler=run_single_command)
    add_config_commands(commands)


def add_runner_arguments(parser: argparse.ArgumentParser, *, token_help: str) -> None:
    """What names one runner, for `register` and `run-single` alike (gitlab-runner's flags)."""
    parser.add_argument("--url", required=True, help="the GitLab server, https://host[:port]")
    parser.add_argument("--token", required=True, help=token_help)
    parser.add_argument("--name", default=None, help="the runner's name (default: host name)")
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="container",
        help="where jobs run: containers (the default), or the host's shell, which isolates "
        "nothing (as gitlab-runner's shell executor)",
    )
    parser.add_argument(
        "--default-image",
        metavar="REF",
        help="image of jobs without image: (required for a container runner: jobs never run "
        "over the host's root)",
    )


def add_config_commands(commands: argparse._SubParsersAction) -> None:
    register_parser = commands.add_parser(
        "register",
        help="register a runner with a GitLab server and add it to the config file",
        description="A glrt- authentication token (made in GitLab's UI) is verified; a legacy "
        "registration token is exchanged for a runner token. Either way the runner is "
        "written to the config file (mode 0600).",
    )
    add_runner_arguments(register_parser, token_help="glrt- or registration token")
    register_parser.add_argument("--concurrent", type=int, metavar="N", help="jobs at once")
    register_parser.add_argument("--tag-list", default="", help="tags, comma-separated")
    register_parser.add_argument(
        "--run-untagged", action="store_true", help="also take jobs without tags"
    )
    register_parser.add_argument("--network", choices=NETWORKS, default="bridge")
    add_config_option(register_parser)
    register_parser.set_defaults(handler=register_command)
    verify = commands.add_parser("verify", help="check every configured runner's token")
    add_config_option(verify)
    verify.set_defaults(handler=verify_command)
    unregister = commands.add_parser("unregister", help="unregister runners, forget them")
    which = unregister.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", action="append", help="the runner to unregister")
    which.add_argument("--all", action="store_true", help="unregister every runner")
    add_config_option(unregister)
    unregister.set_defaults(handler=unregister_command)
    listing = commands.add_parser("list", help="list the configured runners")
    add_config_option(listing)
    listing.set_defaults(handler=list_command)
    run = commands.add_parser(
        "run",
        help="serve every configured runner until SIGTERM/SIGINT (cancel) or SIGQUIT (finish)",
    )
    add_config_option(run)
    run.set_defaults(handler=run_command)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the config file (default: /etc/pyci/runner.toml as root, else "
        "~/.config/pyci/runner.toml)",
    )


def config_path(args: argparse.Namespace) -> Path:
    from runner.runnermode.config import default_path

    return Path(args.config) if args.config else default_path()


def register_command(args: argparse.Namespace) -> int:
    from runner.runnermode.config import RunnerEntry
    from runner.runnermode.registration import register

    check_url(args.url)
    if args.concurrent is not None and args.concurrent < 1:
        raise UsageError(f"--concurrent {args.concurrent}: must be at least 1")
    check_default_image(args)
    entry = RunnerEntry(
        name=args.name or _hostname(),
        url=args.url.rstrip("/"),
        token=args.token,
        default_image=args.default_image or "",
        executor=args.executor,
        network=args.network,
        tag_list=tuple(t.strip() for t in args.tag_list.split(",") if t.strip()),
        run_untagged=args.run_untagged or not args.tag_list,
    )
    path = config_path(args)
    registered = register(path, entry, args.concurrent)
    print(f"registered runner {registered.name} ({short_token(registered.token)}) in {path}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from runner.runnermode.config import load
    from runner.runnermode.registration import verify

    answers = verify(load(config_path(args)))
    for name, problem in answers.items():
        print(f"{name}: {'valid' if problem is None else 'not valid: ' + problem}")
    return 0 if all(problem is None for problem in answers.values()) else 1


def unregister_command(args: argparse.Namespace) -> int:
    from runner.runnermode.registration import unregister

    for name in unregister(config_path(args), None if args.all else set(args.name)):
        print(f"unregistered runner {name}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    from runner.runnermode.config import load

    path = config_path(args)
    config = load(path)
    print(f"{path}: concurrent = {config.concurrent}")
    for entry in config.runners:
        print(
            f"{entry.name}\texecutor={entry.executor}\turl={entry.url}\t"
            f"token={short_token(entry.token)}\timage={entry.default_image}"
        )
    return 0


def run_command(args: argparse.Namespace) -> int:
    from runner.runnermode.config import load

    path = config_path(args)
    config = load(path)
    if not config.runners:
        raise UsageError(f"{path}: no runners (add one with `pyci runner register`)")
    return serve(
        list(config.runners),
        concurrent=config.concurrent,
        check_interval=config.check_interval,
    )


def short_token(token: str) -> str:
    """Enough of a token to tell runners apart, never enough to use it (gitlab-runner's
    short token: 8 characters after the prefix)."""
    body = token.removeprefix("glrt-")
    return body[:8] + "…"


def run_single_command(args: argparse.Namespace) -> int:
    from runner.runnermode.config import RunnerEntry

    check_arguments(args)
    check_default_image(args)
    entry = RunnerEntry(
        name=args.name or _hostname(),
        url=args.url.rstrip("/"),
        token=args.token,
        default_image=args.default_image or "",
        executor=args.executor,
        network=args.network,
        builds_dir=args.builds_dir,
        cache_dir=args.cache_dir,
    )
    return serve(
        [entry],
        concurrent=args.concurrent,
        check_interval=args.check_interval,
        max_builds=args.max_builds,
        wait_timeout=args.wait_timeout,
        insecure_registries=tuple(args.insecure_registry),
    )


def check_default_image(args: argparse.Namespace) -> None:
    """A container runner needs a default image: jobs from a server never run over the host's
    root file system. A shell runner runs them on the host by definition (and says so)."""
    image = (args.default_image or "").strip()
    if args.executor == "container" and not image:
        raise UsageError(
            "--default-image: required for a container runner (jobs from a server never run "
            "over the host's root)"
        )


def check_arguments(args: argparse.Namespace) -> None:
    if args.max_builds is not None and args.max_builds < 1:
        raise UsageError(f"--max-builds {args.max_builds}: must be at least 1")
    if args.concurrent < 1:
        raise UsageError(f"--concurrent {args.concurrent}: must be at least 1")
    if args.wait_timeout is not None and args.wait_timeout <= 0:
        raise UsageError(f"--wait-timeout {args.wait_timeout:g}: must be more than 0")
    check_url(args.url)


def check_url(url: str) -> None:
    from runner.gitlab.server import find_server

    find_server(url, None, Path.cwd())  # the URL's form, one line if wrong


def _hostname() -> str:
    import socket

    return socket.gethostname()


def default_dirs() -> tuple[Path, Path]:
    """(builds, cache): under /var/lib/pyci-runner as root, else ~/.local/share/pyci-runner."""
    if os.geteuid() == 0:
        base = Path("/var/lib/pyci-runner")
    else:
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        base = Path(data) / "pyci-runner"
    return base / "builds", base / "cache"


def serve(
    entries: list[RunnerEntry],
    *,
    concurrent: int,
    check_interval: float,
    max_builds: int | None = None,
    wait_timeout: float | None = None,
    insecure_registries: tuple[str, ...] = (),
) -> int:
    """Serve `entries` (one thread each, `concurrent` jobs at once over all of them) until
    they stop; the container fork server is started first, while pyci has one thread."""
    from executors.factory import executor_session

    capacity = threading.BoundedSemaphore(concurrent)
    with contextlib.ExitStack() as sessions:
        for kind in sorted({entry.executor for entry in entries}):
            sessions.enter_context(executor_session(kind))
        services = [
            make_service(
                entry,
                concurrent,
                check_interval,
                max_builds,
                wait_timeout,
                insecure_registries,
                capacity,
            )
            for entry in entries
        ]
        try:
            with stop_on_signals(lambda graceful: [s.stop(graceful) for s in services]):
                threads = [
                    threading.Thread(target=service.serve, name=f"runner-{entry.name}")
                    for service, entry in zip(services, entries, strict=True)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    while thread.is_alive():
                        thread.join(timeout=0.5)  # the main thread stays free for signals
        finally:
            for service in services:
                service.api.close()
    refused = [f"{e.name}: {s.fatal}" for s, e in zip(services, entries, strict=True) if s.fatal]
    if refused:
        raise PyciError("runner " + "; ".join(refused))
    return 0


def make_service(
    entry: RunnerEntry,
    concurrent: int,
    check_interval: float,
    max_builds: int | None,
    wait_timeout: float | None,
    insecure_registries: tuple[str, ...],
    capacity: threading.Semaphore,
) -> RunnerService:
    from executors.factory import ExecutorOptions, create_executor
    from runner.gitlab.runner_api import RunnerAPI
    from runner.gitlab.server import Server
    from runner.runnermode.job import JobSettings
    from runner.runnermode.service import RunnerService, ServiceSettings

    builds, cache = default_dirs()
    runner_dir = _safe_name(entry.name)
    builds = Path(entry.builds_dir) if entry.builds_dir else builds / runner_dir
    cache = Path(entry.cache_dir) if entry.cache_dir else cache / runner_dir
    for directory in (builds, cache):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = ExecutorOptions(
        default_image=entry.default_image or None,
        network=entry.network,
        insecure_registries=insecure_registries,
    )
    limit = min(entry.limit or concurrent, concurrent)
    job_settings = JobSettings(
        builds_dir=builds,
        cache_dir=cache,
        make_executor=lambda: create_executor(entry.executor, options),
        slots=limit,
        secrets=(entry.token,),
    )
    settings = ServiceSettings(
        name=entry.name,
        executor=entry.executor,
        concurrent=limit,
        check_interval=check_interval,
        max_builds=max_builds,
        wait_timeout=wait_timeout,
    )
    api = RunnerAPI(Server(entry.url.rstrip("/"), entry.token))
    return RunnerService(api, settings, job_settings, announce=announce, capacity=capacity)


def _safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "runner"


def announce(line: str) -> None:
    print(f"pyci runner: {line}", flush=True)


@contextlib.contextmanager
def stop_on_signals(stop) -> Iterator[None]:
    """SIGTERM/SIGINT: stop and cancel running jobs; SIGQUIT: stop, let them finish. The
    handlers only set flags (they run between two bytecodes of the main thread)."""

    def on_signal(signum: int, _frame: object) -> None:
        graceful = signum == signal.SIGQUIT
        stop(graceful)
        with contextlib.suppress(OSError):
            what = "finishing running jobs" if graceful else "canceling running jobs"
            os.write(sys.stderr.fileno(), f"pyci runner: stopping, {what}\n".encode())

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
