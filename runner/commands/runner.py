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

from runner.errors import PyciError, UsageError

NETWORKS = ("bridge", "host", "none")


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
    single.add_argument("--url", required=True, help="the GitLab server, https://host[:port]")
    single.add_argument("--token", required=True, help="the runner's authentication token")
    single.add_argument("--name", default=None, help="the runner's name (default: host name)")
    single.add_argument(
        "--executor", choices=("container",), default="container", help="where jobs run"
    )
    single.add_argument(
        "--default-image",
        required=True,
        metavar="REF",
        help="image of jobs without image: (required: jobs never run over the host's root)",
    )
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


def run_single_command(args: argparse.Namespace) -> int:
    from runner.commands.run import executor_process

    check_arguments(args)
    with executor_process(args.executor, args.network):
        return serve(args)


def check_arguments(args: argparse.Namespace) -> None:
    if args.max_builds is not None and args.max_builds < 1:
        raise UsageError(f"--max-builds {args.max_builds}: must be at least 1")
    if args.concurrent < 1:
        raise UsageError(f"--concurrent {args.concurrent}: must be at least 1")
    if args.wait_timeout is not None and args.wait_timeout <= 0:
        raise UsageError(f"--wait-timeout {args.wait_timeout:g}: must be more than 0")
    if not args.default_image.strip():
        raise UsageError("--default-image: a runner never runs jobs over the host's root")
    from runner.gitlab.server import find_server

    find_server(args.url, None, Path.cwd())  # the URL's form, one line if wrong


def default_dirs() -> tuple[Path, Path]:
    """(builds, cache): under /var/lib/pyci-runner as root, else ~/.local/share/pyci-runner."""
    if os.geteuid() == 0:
        base = Path("/var/lib/pyci-runner")
    else:
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        base = Path(data) / "pyci-runner"
    return base / "builds", base / "cache"


def serve(args: argparse.Namespace) -> int:
    import socket

    from executors.factory import ExecutorOptions, create_executor
    from runner.gitlab.client import Server
    from runner.gitlab.runner_api import RunnerAPI
    from runner.runnermode.job import JobSettings
    from runner.runnermode.service import RunnerService, ServiceSettings

    builds, cache = default_dirs()
    builds = Path(args.builds_dir) if args.builds_dir else builds
    cache = Path(args.cache_dir) if args.cache_dir else cache
    for directory in (builds, cache):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = ExecutorOptions(
        default_image=args.default_image,
        network=args.network,
        insecure_registries=tuple(args.insecure_registry),
    )
    job_settings = JobSettings(
        builds_dir=builds,
        cache_dir=cache,
        make_executor=lambda: create_executor(args.executor, options),
        slots=args.concurrent,
        secrets=(args.token,),
    )
    settings = ServiceSettings(
        name=args.name or socket.gethostname(),
        executor=args.executor,
        concurrent=args.concurrent,
        check_interval=args.check_interval,
        max_builds=args.max_builds,
        wait_timeout=args.wait_timeout,
    )
    server = Server(args.url.rstrip("/"), args.token)
    with RunnerAPI(server) as api:
        service = RunnerService(api, settings, job_settings, announce=announce)
        with stop_on_signals(service.stop):
            service.serve()
    if service.fatal:
        raise PyciError(f"runner: {service.fatal}")
    return 0


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
