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
from typing import TYPE_CHECKING, Any

from runner.commands.common import parse_variables
from runner.core.errors import UsageError
from runner.executor_options import add_executor_options, chosen_executor
from runner.project import ProjectOptions

# imported where they are used: `pyci --help` and the other commands need none of them
if TYPE_CHECKING:
    from runner.core.jobspec import JobSpec
    from runner.evaluate.predefined import GitFacts
    from runner.gitlab.client import GitLabClient
    from runner.gitlab.server import Server
    from runner.reproduce import OriginalJob, OriginalPipeline
    from runner.vars.remote import ServerVariables


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="run a job (or a pipeline) of GitLab again, here, as it ran there",
        description="Read the job at JOB_URL (https://HOST/GROUP/PROJECT/-/jobs/ID), or with "
        "--pipeline the pipeline at URL (.../-/pipelines/ID), through GitLab's API and run it "
        "here: at its commit, with its pipeline's ref, source and variables, the project's "
        "and groups' CI/CD variables, and the artifacts of the jobs a job depended on. The "
        "token comes from PYCI_GITLAB_TOKEN, GITLAB_TOKEN or git's credential helper.",
    )
    parser.add_argument("url", nargs="?", metavar="JOB_URL", help="the job's page on GitLab")
    parser.add_argument(
        "--pipeline", metavar="URL", help="reproduce this whole pipeline instead of one job"
    )
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
    from runner.gitlab.client import GitLabClient
    from runner.gitlab.server import find_server
    from runner.reproduce import parse_url, read_job, read_pipeline

    if (args.url is None) == (args.pipeline is None):
        raise UsageError("name a job URL, or a pipeline with --pipeline URL (one of the two)")
    address = parse_url(args.pipeline or args.url, "pipelines" if args.pipeline else "jobs")
    directory = Path(args.directory).resolve()
    if not directory.is_dir():
        raise UsageError(f"-C {args.directory}: no such directory")
    server = find_server(address.server_url, None, directory)
    assert server is not None  # the URL names it
    with GitLabClient(server) as client:
        if address.kind == "jobs":
            job = read_job(client, address)
            pipeline = job.pipeline
            say(
                f"job {job.name} (#{job.id}, {job.status}) of pipeline #{pipeline.id}: "
                f"{pipeline.source} on {pipeline.ref} at {pipeline.sha[:8]}"
            )
        else:
            job = None
            pipeline = read_pipeline(client, address.server_url, address.project, address.id)
            ref, sha = pipeline.ref, pipeline.sha[:8]
            say(f"pipeline #{pipeline.id}: {pipeline.source} on {ref} at {sha}")
        unreadable = unreadable_variables(pipeline)
        fetched = server_variables(server, pipeline, unreadable)
        return reproduce(args, client, server, directory, pipeline, job, fetched, unreadable)


def reproduce(
    args: argparse.Namespace,
    client: GitLabClient,
    server: Server,
    directory: Path,
    pipeline: OriginalPipeline,
    job: OriginalJob | None,
    fetched: ServerVariables,
    unreadable: list[str],
) -> int:
    from runner.evaluate.predefined import read_git_facts
    from runner.reproduce import (
        checkout_at,
        differences,
        original_facts,
        pipeline_differences,
        predefined_overrides,
        undefined_references,
    )

    with checkout_at(directory, pipeline.sha, say) as workdir:
        facts = original_facts(read_git_facts(workdir), pipeline, server)
        variables = {**predefined_overrides(pipeline, job), **parse_variables(args.variable)}
        opts = project_options(args, workdir, directory, variables, facts, fetched, pipeline)
        spec = None
        if job is not None:
            spec, planned = planned_job(opts, pipeline, job.name)
            download_artifacts(client, pipeline, spec, planned, opts)
        code, outcomes = run(args, opts, job.name if job is not None else None)
        if workdir != directory:
            keep_logs(workdir, directory, f"{job.id}" if job else f"pipeline-{pipeline.id}")
    found = list(unreadable)
    if job is not None:
        outcome = outcomes.get(job.name, {})
        found += differences(
            job,
            exit_code=outcome.get("exit_code"),
            status=str(outcome.get("status") or "not run"),
            image_digest=image_digest(args, spec),
        )
        assert spec is not None
        found += [
            f"${name}: the job uses it, nothing defines it here (did the original have it?)"
            for name in undefined_references(spec)
        ]
    else:
        statuses = {name: str(row.get("status")) for name, row in outcomes.items()}
        found += pipeline_differences(client, pipeline, statuses)
    if found:
        say("what differs from the original run:")
        for line in found:
            say(f"  - {line}")
    elif job is not None and job.status == "failed":
        say("the job failed the same way as the original")
    elif job is not None:
        say(f"the job ended as the original did ({job.status})")
    else:
        say("every job ended as in the original")
    return code


def unreadable_variables(pipeline: OriginalPipeline) -> list[str]:
    if pipeline.variables is not None:
        return []
    return [
        "the pipeline's own variables could not be read (they need the Maintainer role): "
        "set them with --variable KEY=VALUE"
    ]


def server_variables(
    server: Server, pipeline: OriginalPipeline, unreadable: list[str]
) -> ServerVariables:
    """The project's and groups' CI/CD variables, protected ones for a protected ref; when
    the token may not read them, none (and a line saying so)."""
    from runner.gitlab.errors import GitLabError
    from runner.vars.remote import ServerVariables, fetch_server_variables

    try:
        return fetch_server_variables(server, pipeline.project, pipeline.ref_name)
    except GitLabError as exc:
        if exc.status not in (401, 403):
            raise
        unreadable.append(
            f"the project's CI/CD variables could not be read ({exc}); put them in "
            ".pyci/variables.yml or pass --variable"
        )
        return ServerVariables((), False)


def project_options(
    args: argparse.Namespace,
    workdir: Path,
    directory: Path,
    variables: dict[str, str],
    facts: GitFacts,
    fetched: ServerVariables,
    pipeline: OriginalPipeline,
) -> ProjectOptions:
    from runner.config.remote_includes import IncludeOptions
    from runner.vars.source import SettingsSource

    file = (workdir / args.file).resolve()
    if not file.is_file():
        raise UsageError(f"{file}: no such file at this commit (use -f to name the pipeline file)")
    # the variables files of the user's own checkout, not the temporary worktree's
    settings = SettingsSource(directory, fetched=fetched, pipeline=pipeline.variables or ())
    includes = IncludeOptions(gitlab_url=facts.server_url)
    return ProjectOptions(workdir, file, variables, includes, settings, facts)


def planned_job(
    opts: ProjectOptions, pipeline: OriginalPipeline, name: str
) -> tuple[JobSpec, tuple[JobSpec, ...]]:
    """The job as pyci plans it at that commit for that ref, and every job of the pipeline."""
    from runner.pipeline import load_pipeline
    from runner.reproduce import ReproduceError

    planned = load_pipeline(opts)
    job = next((j for j in planned.jobs if j.name == name), None)
    if job is None:
        names = ", ".join(j.name for j in planned.jobs)
        raise ReproduceError(
            f"job {name!r} is not in the pipeline pyci plans for {pipeline.ref} at "
            f"{pipeline.sha[:8]} (it has: {names})"
        )
    return job, planned.jobs


def download_artifacts(
    client: GitLabClient,
    pipeline: OriginalPipeline,
    job: JobSpec,
    planned: tuple[JobSpec, ...],
    opts: ProjectOptions,
) -> None:
    """The artifacts of the jobs `job` depended on, from the original pipeline."""
    from runner.build.artifacts import ArtifactStore, pipeline_file_key
    from runner.reproduce import download_dependencies
    from runner.schedule.graph import JobGraph
    from runner.state_dir import STATE_DIR_NAME

    key = pipeline_file_key(opts.directory, opts.file)
    store = ArtifactStore(opts.directory / STATE_DIR_NAME, key)
    sources = JobGraph([job], planned).artifact_sources(job)
    for missing in download_dependencies(client, pipeline, sources, store, say):
        say(f"{missing} kept no artifacts in pipeline #{pipeline.id}")


def run(
    args: argparse.Namespace, opts: ProjectOptions, job: str | None
) -> tuple[int, dict[str, dict[str, Any]]]:
    """`pyci run` of the job (None: the pipeline): its exit code and the JSON report's rows
    by job name."""
    from runner.commands.run import run_command

    with tempfile.TemporaryDirectory(prefix="pyci-reproduce-") as scratch:
        report = Path(scratch) / "report.json"
        code = run_command(run_arguments(args, opts, job, report), opts)
        if args.json_report and report.is_file():
            shutil.copyfile(report, Path.cwd() / args.json_report)
        rows = json.loads(report.read_text())["jobs"] if report.is_file() else []
    return code, {row["name"]: row for row in rows}


def run_arguments(
    args: argparse.Namespace, opts: ProjectOptions, job: str | None, report: Path
) -> argparse.Namespace:
    """`pyci run [JOB]`'s arguments: run's own defaults, then every option of the same name
    that reproduce was given (the executor options are shared, whatever they are)."""
    from runner.commands import run

    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    run_args = parser.parse_args(["run"])
    for name, value in vars(args).items():
        if name in vars(run_args):
            setattr(run_args, name, value)
    run_args.jobs = [job] if job is not None else []
    run_args.directory = str(opts.directory)
    run_args.file = str(opts.file)
    run_args.variable = []  # in opts already
    run_args.json_report = str(report)
    run_args.plain = True
    return run_args


def image_digest(args: argparse.Namespace, job: JobSpec | None) -> str | None:
    """`name@sha256:...` of the image the job ran in, from pyci's store (None: no image)."""
    if job is None or job.image is None or chosen_executor(args) != "container":
        return None
    from executors.images.store import ImageStore

    pulled = ImageStore().get(job.image.name)
    return f"{job.image.name}@{pulled.digest}" if pulled is not None and pulled.digest else None


def keep_logs(workdir: Path, directory: Path, label: str) -> None:
    """The temporary worktree goes: its logs stay, under the clone's .pyci/."""
    logs = workdir / ".pyci" / "logs"
    if not logs.is_dir():
        return
    target = directory / ".pyci" / "reproduce" / label / "logs"
    shutil.copytree(logs, target, dirs_exist_ok=True)
    say(f"logs kept in {target}")
