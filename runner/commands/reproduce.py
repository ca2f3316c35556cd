"""`pyci reproduce JOB_URL`: run one job of a GitLab pipeline again, here, as it ran there.

The steps: read the job through the API; work at its commit (a temporary worktree when the
checkout is elsewhere); plan the pipeline with that pipeline's ref, source and variables (the
pipeline's own, the project's and its groups' CI/CD variables, the variables files); download
the artifacts of the jobs it depended on; run the job with `pyci run`'s machinery, a shell
opening on failure; say what differs from the original. The exit code is `pyci run`'s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from runner.commands.common import ProjectOptions, parse_variables
from runner.errors import UsageError
from runner.executor_options import add_executor_options, chosen_executor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="run a job of a GitLab pipeline again, here, as it ran there",
        description="Read the job at JOB_URL (https://HOST/GROUP/PROJECT/-/jobs/ID) through "
        "GitLab's API and run it here: at its commit, with its pipeline's ref, source and "
        "variables, the project's and groups' CI/CD variables, and the artifacts of the jobs "
        "it depended on. The token comes from PYCI_GITLAB_TOKEN, GITLAB_TOKEN or git's "
        "credential helper.",
    )
    parser.add_argument("url", metavar="JOB_URL", help="the job's page on GitLab")
    parser.add_argument(
        "-C", "--directory", default=".", metavar="DIR", help="the project's clone (default: .)"
    )
    parser.add_argument(
        "-f",
        "--file",
        default=".gitlab-ci.yml",
        metavar="FILE",
        help="the pipeline file, relative to DIR (the project's CI/CD configuration file)",
    )
    parser.add_argument(
        "--variable",
        "-v",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set or override a pipeline variable (one the token could not read, say)",
    )
    parser.add_argument(
        "--no-shell-on-failure",
        dest="shell_on_failure",
        action="store_false",
        help="do not open a shell in the job's container when its script fails",
    )
    parser.add_argument(
        "--json-report", metavar="FILE", help="write a JSON report of the run to FILE"
    )
    add_executor_options(parser)
    parser.set_defaults(handler=reproduce_command, config_error_exit=2)


def say(message: str) -> None:
    print(f"reproduce: {message}", file=sys.stderr, flush=True)


def reproduce_command(args: argparse.Namespace) -> int:
    from runner.evaluate.predefined import read_git_facts
    from runner.gitlab.client import GitLabClient
    from runner.gitlab.server import find_server
    from runner.reproduce import (
        checkout_at,
        original_facts,
        parse_job_url,
        predefined_overrides,
        read_original,
    )

    address = parse_job_url(args.url)
    directory = Path(args.directory).resolve()
    if not directory.is_dir():
        raise UsageError(f"-C {args.directory}: no such directory")
    cli_variables = parse_variables(args.variable)
    server = find_server(address.server_url, None, directory)
    assert server is not None  # the URL names it
    with GitLabClient(server) as client:
        original = read_original(client, address)
        say(
            f"job {original.name} (#{address.job_id}, {original.status}) of pipeline "
            f"#{original.pipeline_id}: {original.pipeline_source} on {original.ref} "
            f"at {original.sha[:8]}"
        )
        unreadable: list[str] = []
        fetched = server_variables(server, original, unreadable)
        with checkout_at(directory, original.sha, say) as workdir:
            facts = original_facts(read_git_facts(workdir), original)
            facts = with_project(facts, address.project, server)
            variables = {
                **(original.pipeline_variables or {}),
                **predefined_overrides(original),
                **cli_variables,
            }
            opts = project_options(args, workdir, directory, variables, facts, fetched)
            code, outcome, image_digest = run_job(args, client, original, opts)
            if workdir != directory:
                keep_logs(workdir, directory, address.job_id)
    from runner.reproduce import differences

    found = differences(
        original,
        exit_code=outcome.get("exit_code"),
        status=str(outcome.get("status") or "unknown"),
        image_digest=image_digest,
        unreadable=unreadable,
    )
    if found:
        say("what differs from the original run:")
        for line in found:
            say(f"  - {line}")
    elif original.status == "failed" and outcome.get("status") == "failed":
        say("the job failed the same way as the original")
    return code


def server_variables(server: Any, original: Any, unreadable: list[str]) -> Any:
    """The project's and groups' CI/CD variables, protected ones for a protected ref; when
    the token may not read them, none (and a line saying so)."""
    from runner.gitlab.client import GitLabError
    from runner.vars.remote import ServerVariables, fetch_server_variables

    try:
        return fetch_server_variables(server, original.address.project, original.ref)
    except GitLabError as exc:
        if exc.status not in (401, 403):
            raise
        unreadable.append(
            f"the project's CI/CD variables could not be read ({exc}); put them in "
            ".pyci/variables.yml or pass --variable"
        )
        return ServerVariables((), False)


def with_project(facts: Any, project: str, server: Any) -> Any:
    """The facts of the job's project on that server, whatever this clone's remote says."""
    import dataclasses
    from urllib.parse import urlsplit

    parts = urlsplit(server.url)
    namespace, _, name = project.rpartition("/")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return dataclasses.replace(
        facts,
        project_path=project,
        project_namespace=namespace,
        project_name=name,
        project_url=f"{server.url}/{project}",
        server_host=parts.hostname or facts.server_host,
        server_port=port,
        server_protocol=parts.scheme,
    )


def project_options(
    args: argparse.Namespace,
    workdir: Path,
    directory: Path,
    variables: dict[str, str],
    facts: Any,
    fetched: Any,
) -> ProjectOptions:
    from runner.config.remote_includes import IncludeOptions
    from runner.vars.source import SettingsSource

    file = (workdir / args.file).resolve()
    if not file.is_file():
        raise UsageError(f"{file}: no such file at this commit (use -f to name the pipeline file)")
    # the variables files of the user's own checkout, not the temporary worktree's
    settings = SettingsSource(directory, fetched=fetched)
    includes = IncludeOptions(gitlab_url=facts.server_url)
    return ProjectOptions(workdir, file, variables, includes, settings, facts)


def run_job(
    args: argparse.Namespace, client: Any, original: Any, opts: ProjectOptions
) -> tuple[int, dict[str, Any], str | None]:
    """Plan, download the dependencies' artifacts, run the job: (exit code, the job's row of
    the JSON report, the digest of the image it ran in)."""
    from runner.build.artifacts import ArtifactStore, pipeline_file_key
    from runner.commands.run import STATE_DIR_NAME, run_command
    from runner.pipeline import load_pipeline
    from runner.reproduce import ReproduceError, download_dependencies
    from runner.schedule.graph import JobGraph

    pipeline = load_pipeline(opts)
    job = next((j for j in pipeline.jobs if j.name == original.name), None)
    if job is None:
        names = ", ".join(j.name for j in pipeline.jobs)
        raise ReproduceError(
            f"job {original.name!r} is not in the pipeline pyci plans for {original.ref} at "
            f"{original.sha[:8]} (it has: {names})"
        )
    key = pipeline_file_key(opts.directory, opts.file)
    store = ArtifactStore(opts.directory / STATE_DIR_NAME, key)
    sources = JobGraph([job], pipeline.jobs).artifact_sources(job)
    for name in download_dependencies(client, original, sources, store, say):
        say(f"{name} kept no artifacts in pipeline #{original.pipeline_id}")
    with tempfile.TemporaryDirectory(prefix="pyci-reproduce-") as scratch:
        report = Path(scratch) / "report.json"
        run_args = run_arguments(args, opts, original.name, report)
        code = run_command(run_args, opts)
        if args.json_report:
            shutil.copyfile(report, Path.cwd() / args.json_report)
        rows = json.loads(report.read_text())["jobs"] if report.is_file() else []
    outcome = next((row for row in rows if row["name"] == original.name), {})
    return code, outcome, image_digest(job, args)


def run_arguments(
    args: argparse.Namespace, opts: ProjectOptions, job: str, report: Path
) -> argparse.Namespace:
    """`pyci run JOB`'s arguments: run's own defaults, then what reproduce was given."""
    from runner.commands import run

    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    run_args = parser.parse_args(["run"])
    given = {name: value for name, value in vars(args).items() if hasattr(run_args, name)}
    for name, value in given.items():
        setattr(run_args, name, value)
    run_args.jobs = [job]
    run_args.directory = str(opts.directory)
    run_args.file = str(opts.file)
    run_args.variable = []  # already in opts
    run_args.json_report = str(report)
    run_args.plain = True
    return run_args


def image_digest(job: Any, args: argparse.Namespace) -> str | None:
    """`name@sha256:...` of the job's image in pyci's store (None: no image, or the shell)."""
    if job.image is None or chosen_executor(args) != "container":
        return None
    from executors.images.store import ImageStore

    pulled = ImageStore().get(job.image.name)
    return f"{job.image.name}@{pulled.digest}" if pulled is not None and pulled.digest else None


def keep_logs(workdir: Path, directory: Path, job_id: int) -> None:
    """The temporary worktree goes: its logs stay, under the clone's .pyci/."""
    logs = workdir / ".pyci" / "logs"
    if not logs.is_dir():
        return
    target = directory / ".pyci" / "reproduce" / str(job_id) / "logs"
    shutil.copytree(logs, target, dirs_exist_ok=True)
    say(f"logs kept in {target}")
