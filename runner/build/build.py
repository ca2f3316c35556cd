"""One job's build: GitLab's stages in order, each a section of the job log.

    prepare_executor → get_sources → restore_cache → download_artifacts → step_script
    → after_script → archive_cache(_on_failure) → upload_artifacts_on_success/_on_failure
    → cleanup_file_variables

`step_script` and `after_script` are generated shell scripts run by the executor; the other
stages work on the job's copy of the repository from the host (they need no tool inside the
job's environment, and the copy is a host directory for every executor). A failing script is a
result; an `ExecutorError` or a failed copy is a system failure. `run_build` never raises for
either, and always removes the job's directories. It raises for what is pyci's failure, not
the job's: a bug, or a job log that could not be written (raised once the job's processes are
gone); the scheduler makes either the job's `runner_system_failure`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from executors.base import BuildDirs, ExecResult, Executor, ExecutorError, StageCommand
from runner.build import scripts, workspace
from runner.build.artifacts import ArtifactStore, job_slug
from runner.build.cache import CacheStore, archive_caches, restore_caches
from runner.build.context import BuildContext
from runner.build.environment import JobEnvironment, build_environment
from runner.build.fileset import copy_tree
from runner.build.joblog import BuildLog
from runner.build.masking import Masker
from runner.build.sources import (
    SourceCopy,
    SourcesError,
    TreeProbe,
    get_sources,
    untracked_files,
)
from runner.core import background
from runner.core.events import FailureReason, JobOutcome, JobStatus, Reporter
from runner.core.jobspec import JobSpec

AFTER_SCRIPT_TIMEOUT = 300.0  # gitlab-runner's default; RUNNER_AFTER_SCRIPT_TIMEOUT overrides
# after a cancel, after_script still runs (GitLab 17+) but a local user who pressed Ctrl-C
# wants the run over soon, so it gets at most this long
CANCELED_AFTER_SCRIPT_TIMEOUT = 10.0


@dataclass
class _Result:
    """How the user's script ended, in GitLab's terms."""

    state: str = "success"  # CI_JOB_STATUS: success, failed, canceled, timedout
    exit_code: int | None = None
    reason: FailureReason | None = None
    message: str | None = None


def _parse_duration(text: str | None) -> float | None:
    """`RUNNER_AFTER_SCRIPT_TIMEOUT` values: seconds, or Go durations like `5m`, `1h30m`."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            return None
    return total if not number else None


def _wants_checkout(job: JobSpec) -> bool:
    """Whether the job will most likely need the work tree's status (GIT_STRATEGY and
    GIT_CHECKOUT as written; get_sources decides on the expanded values)."""
    written = {variable.key: variable.value for variable in job.variables}
    strategy = written.get("GIT_STRATEGY", "clone").lower()
    return strategy not in ("none", "empty") and written.get("GIT_CHECKOUT") != "false"


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


class _Build:
    def __init__(self, job, executor, ctx, reporter, cancel, abort):
        self.job: JobSpec = job
        self.executor: Executor = executor
        self.ctx: BuildContext = ctx
        self.cancel: threading.Event = cancel
        # a second Ctrl-C: stop a canceled job's after_script as well
        self.abort: threading.Event = abort if abort is not None else threading.Event()
        self.masker = Masker(v.value for v in job.variables if v.masked)
        self.log = BuildLog(job.name, reporter, self.masker, job.coverage)
        self.store = ArtifactStore(ctx.state_dir, ctx.pipeline_file)
        self.caches = CacheStore(ctx.cache_dir or ctx.state_dir / "cache")
        self.env: JobEnvironment | None = None
        self.upstream_files: list[str] = []
        self.source: SourceCopy | None = None
        self.started = time.monotonic()
        self.timeout = job.timeout if job.timeout is not None else ctx.default_timeout

    # -- helpers ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def section(self, name: str, header: str) -> Iterator[None]:
        self.log.section_start(name, header)
        try:
            yield
        finally:
            self.log.section_end(name)

    @contextlib.contextmanager
    def warn_on(self, errors: type[Exception], what: str) -> Iterator[None]:
        """A failure that GitLab treats as a warning (saving a cache)."""
        try:
            yield
        except errors as exc:
            self.log.warning(f"{what}: {exc}")

    @property
    def dirs(self) -> BuildDirs:
        assert self.workspace is not None
        return self.workspace.dirs

    @property
    def project(self) -> Path:
        return self.dirs.project_dir

    def untracked(self) -> list[str]:
        assert self.source is not None
        return untracked_files(self.project, self.source)

    def script_env(self) -> scripts.ScriptEnvironment:
        assert self.env is not None
        project = self.executor.project_dir_in_job()
        return scripts.ScriptEnvironment(
            project, project + ".tmp", self.env.script_variables(), self.executor.shell_name
        )

    # -- the stages ------------------------------------------------------------------------
    def run(self) -> JobOutcome:
        self.log.line(f"Running with pyci (attempt {self.ctx.attempt})")
        root = self.ctx.builds_root or workspace.default_builds_root()
        self.workspace: workspace.Workspace | None = None
        self.probe: TreeProbe | None = None
        try:
            if _wants_checkout(self.job):
                self.probe = TreeProbe(self.ctx.project_dir)  # runs while we prepare
            self.store.clear(self.job.name)
            self.workspace = workspace.create(root, self.ctx.project_dir, self.job.name)
            result = self.stages()
        except (ExecutorError, SourcesError, OSError) as exc:
            # OSError: a host-side stage could not read or write (disk full, permissions)
            reason = getattr(exc, "reason", "runner_system_failure")
            result = _Result("failed", None, reason, self.masker.mask(str(exc)))
            kind = "system failure" if reason == "runner_system_failure" else reason
            self.log.error(f"Job failed ({kind.replace('_', ' ')}): {exc}")
            return self.outcome(result)
        finally:
            if self.probe is not None:
                self.probe.discard()
            self.executor.cleanup()
            if self.workspace is not None:
                # the outcome need not wait for the files to go (background.finish_removals)
                background.remove_later(self.remove_workspace)
        self.final_line(result)
        return self.outcome(result)

    def stages(self) -> _Result:
        name = self.executor.name
        with self.section("prepare_executor", f'Preparing the "{name}" executor'):
            self.executor.prepare(self.job, self.dirs, self.log)
        self.prepare_environment()
        with self.section("get_sources", "Getting source from Git repository"):
            self.source = get_sources(
                self.ctx.project_dir,
                self.project,
                self.log,
                strategy=self.env_value("GIT_STRATEGY") or "clone",
                checkout=(self.env_value("GIT_CHECKOUT") or "true").lower() != "false",
                submodules=self.env_value("GIT_SUBMODULE_STRATEGY") or "none",
                workspace=self.workspace,
                probe=self.probe,
            )
        result = self.before_script_stages()
        if result is None:
            result = self.step_script()
        self.after_script(result)
        succeeded = result.state == "success"
        self.archive_cache(succeeded)
        self.upload_artifacts(succeeded)
        with self.section(
            "cleanup_file_variables", "Cleaning up project directory and file based variables"
        ):
            scratch = self.dirs.scratch
            for entry in scratch.iterdir() if scratch.is_dir() else ():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        return result

    def expand_path(self, text: str) -> str:
        """A keyword value expanded; a path under CI_PROJECT_DIR (as the job sees it, which
        for a container is not the host's path) made relative to the project."""
        assert self.env is not None
        value = self.env.expand(text)
        inside = self.executor.project_dir_in_job().rstrip("/") + "/"
        if value.startswith(inside):
            value = value[len(inside) :] or "."
        return value

    def env_value(self, key: str) -> str | None:
        assert self.env is not None
        return self.env.values.get(key)

    def stored_upstream(self) -> tuple[list[str], list[str]]:
        """(upstream jobs that stored artifacts, those that stored metadata such as dotenv),
        from one listing of the store rather than a look per upstream job (a job of the last
        stage of a big pipeline has all earlier jobs as upstream)."""
        if not self.ctx.upstream:
            return [], []
        try:
            names = set(os.listdir(self.store.root))
        except OSError:
            return [], []
        slugs = [(job, job_slug(job)) for job in self.ctx.upstream]
        files = [job for job, slug in slugs if slug in names]
        meta = [job for job, slug in slugs if f"{slug}.json" in names]
        return files, meta

    def prepare_environment(self) -> None:
        self.upstream_files, with_meta = self.stored_upstream()
        dotenv = [var for job in with_meta for var in self.store.dotenv(job)]
        project = self.executor.project_dir_in_job()
        builds_dir = self.executor.builds_dir_in_job()
        self.env = build_environment(self.job.variables, dotenv, project, builds_dir)
        self.masker.add(self.env.secrets)  # the expanded forms of masked values too

    def before_script_stages(self) -> _Result | None:
        assert self.env is not None
        if any(c.paths or c.untracked for c in self.job.cache):
            with self.section("restore_cache", "Restoring cache"):
                restore_caches(
                    self.job.cache,
                    self.caches,
                    self.project,
                    self.env.values,
                    self.expand_path,
                    self.log,
                )
        if self.upstream_files:
            # as on GitLab, whose runner is only told of dependencies that have artifacts:
            # upstream jobs without any are not mentioned
            with self.section("download_artifacts", "Downloading artifacts"):
                for upstream in self.upstream_files:
                    self.log.notice(f"Downloading artifacts for {upstream}...")
                    copied = self.store.download(upstream, self.project)
                    if copied is None:
                        self.log.line(f"{upstream} has no artifacts")
                    else:
                        self.log.line(f"Copied {copied} files from {self.store.job_dir(upstream)}")
        if self.cancel.is_set():
            return _Result("canceled", None, "canceled", "canceled")
        if self.remaining() <= 0:
            return self.timed_out()
        return None

    def remaining(self) -> float:
        return self.timeout - (time.monotonic() - self.started)

    def timed_out(self) -> _Result:
        return _Result(
            "timedout",
            None,
            "job_execution_timeout",
            f"execution took longer than {_fmt_seconds(self.timeout)}",
        )

    def step_script(self) -> _Result:
        if self.ctx.debug_shell is not None:
            text = scripts.debug_shell(
                self.script_env(), self.job.before_script, self.ctx.debug_shell
            )
        else:
            text = scripts.step_script(self.script_env(), self.job.before_script, self.job.script)
        timeout = max(self.remaining(), 0.001)
        # gitlab-runner's RUNNER_SCRIPT_TIMEOUT: a shorter limit for the script alone
        script_timeout = _parse_duration(self.env_value("RUNNER_SCRIPT_TIMEOUT"))
        if script_timeout:
            timeout = min(timeout, script_timeout)
        with self.section("step_script", 'Executing "step_script" stage of the job script'):
            res = self.executor.run(
                StageCommand("step_script", text, timeout=timeout), self.log, self.cancel
            )
        if res.timed_out and script_timeout and timeout == script_timeout:
            return _Result(
                "timedout",
                None,
                "job_execution_timeout",
                f"script timeout: execution took longer than {_fmt_seconds(timeout)}",
            )
        return self.classify(res)

    def classify(self, res: ExecResult) -> _Result:
        if res.canceled:
            return _Result("canceled", None, "canceled", "canceled")
        if res.timed_out:
            return self.timed_out()
        if res.out_of_memory:
            return _Result("failed", res.exit_code, "out_of_memory", "out of memory")
        if res.exit_code:
            return _Result("failed", res.exit_code, "script_failure", f"exit code {res.exit_code}")
        return _Result(exit_code=0)

    def after_script(self, result: _Result) -> None:
        if not self.job.after_script:
            return
        timeout = _parse_duration(self.env_value("RUNNER_AFTER_SCRIPT_TIMEOUT"))
        timeout = AFTER_SCRIPT_TIMEOUT if timeout is None else timeout
        # a cancel has already set the job's event: after_script gets the second one's
        event = self.cancel
        if result.state == "canceled":
            timeout = min(timeout, CANCELED_AFTER_SCRIPT_TIMEOUT)
            event = self.abort
        text = scripts.after_script(self.script_env(), self.job.after_script, result.state)
        with self.section("after_script", "Running after_script"):
            res = self.executor.run(StageCommand("after_script", text, timeout), self.log, event)
            if res.timed_out:
                self.log.warning(
                    f"after_script failed, but job will continue unaffected: "
                    f"execution took longer than {_fmt_seconds(timeout)}"
                )
            elif res.exit_code:
                self.log.warning(
                    "after_script failed, but job will continue unaffected: "
                    f"exit code {res.exit_code}"
                )

    def archive_cache(self, succeeded: bool) -> None:
        assert self.env is not None
        wanted = [
            c
            for c in self.job.cache
            if (c.paths or c.untracked)
            and (c.when == "always" or (c.when == "on_success") == succeeded)
        ]
        if not wanted:
            return
        name = "archive_cache" if succeeded else "archive_cache_on_failure"
        header = f"Saving cache for {'successful' if succeeded else 'failed'} job"
        with self.section(name, header), self.warn_on(OSError, "Failed to create cache"):
            archive_caches(
                self.job.cache,
                self.caches,
                self.project,
                self.untracked,
                self.expand_path,
                succeeded,
                self.log,
            )

    def upload_artifacts(self, succeeded: bool) -> None:
        assert self.env is not None
        spec = self.job.artifacts
        if spec.empty:
            return
        if spec.when != "always" and (spec.when == "on_success") != succeeded:
            return
        kind = "success" if succeeded else "failure"
        header = f"Uploading artifacts for {'successful' if succeeded else 'failed'} job"
        with self.section(f"upload_artifacts_on_{kind}", header):
            commit = self.env_value("CI_COMMIT_SHA") or ""
            self.store.upload(
                self.job.name,
                spec,
                self.project,
                self.untracked,
                self.expand_path,
                self.log,
                commit,
            )
            stored = self.store.job_dir(self.job.name)
            if self.ctx.artifacts_to_source and stored.is_dir():
                copied = copy_tree(stored, self.ctx.project_dir)
                self.log.notice(f"Copied {copied} artifact files into {self.ctx.project_dir}")

    def remove_workspace(self) -> None:
        assert self.workspace is not None
        self.workspace.remove()  # unmounts the job's view of the sources first
        if self.source is not None and self.source.snapshot is not None:
            self.source.snapshot.release()  # only now: it was the lower layer of that view

    # -- the end -----------------------------------------------------------------------------
    def final_line(self, result: _Result) -> None:
        if result.state == "success":
            self.log.notice("Job succeeded")
        else:
            self.log.error(f"Job failed: {result.message}")

    def outcome(self, result: _Result) -> JobOutcome:
        self.log.close()
        status: JobStatus = {"success": "success", "canceled": "canceled"}.get(
            result.state, "failed"
        )  # type: ignore[assignment]
        allowed = status == "failed" and self.job.allow_failure.permits(result.exit_code)
        return JobOutcome(
            status=status,
            exit_code=result.exit_code,
            failure_reason=result.reason,
            allowed_failure=allowed,
            duration=time.monotonic() - self.started,
            attempts=self.ctx.attempt,
            coverage=self.log.coverage,
            message=result.message,
        )


def run_build(
    job: JobSpec,
    executor: Executor,
    ctx: BuildContext,
    reporter: Reporter,
    cancel: threading.Event,
    abort: threading.Event | None = None,
) -> JobOutcome:
    """Run every stage of `job` with `executor`; emits SectionStarted and (masked) LogChunk
    events to `reporter`. Script failures, timeouts, cancels and executor errors all become
    the returned outcome. `abort` (a second Ctrl-C): a canceled job's after_script is stopped
    too. Raises what `reporter` raised, if it failed to take the job's log."""
    build = _Build(job, executor, ctx, reporter, cancel, abort)
    outcome = build.run()
    if build.log.failure is not None:
        raise build.log.failure
    return outcome
