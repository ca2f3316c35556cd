"""Register, verify and unregister runners, keeping the config file in step with the server.

A runner made in GitLab's UI comes with an authentication token (`glrt-…`): registering only
checks it (`POST /runners/verify`) and writes it down. A legacy registration token is
exchanged for a runner token (`POST /runners`, with the runner's description, tags and info).
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import replace
from pathlib import Path

from runner.core.errors import PyciError, UsageError
from runner.gitlab.errors import GitLabError
from runner.gitlab.runner_api import RunnerAPI
from runner.gitlab.server import Server
from runner.runnermode import config as configs
from runner.runnermode.config import RunnerConfig, RunnerEntry
from runner.runnermode.service import ServiceSettings, runner_info

AUTHENTICATION_TOKEN_PREFIX = "glrt-"


def system_id() -> str:
    """A stable id of this box (gitlab-runner's `s_` + 12 hex digits), from its host name."""
    return "s_" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


def register(path: Path, entry: RunnerEntry, concurrent: int | None) -> RunnerEntry:
    """Register `entry` (its token as given) and add it to the config at `path`."""
    config = configs.load(path)
    if any(existing.name == entry.name for existing in config.runners):
        raise UsageError(f"{path}: a runner named {entry.name!r} is already registered")
    with RunnerAPI(Server(entry.url, entry.token)) as api:
        try:
            if entry.token.startswith(AUTHENTICATION_TOKEN_PREFIX):
                api.verify(system_id())
                registered = entry
            else:
                info = runner_info(ServiceSettings(entry.name, entry.executor))
                token = api.register(
                    entry.token,
                    info,
                    description=entry.name,
                    tag_list=",".join(entry.tag_list),
                    run_untagged=entry.run_untagged,
                )
                registered = replace(entry, token=token)
        except GitLabError as exc:
            raise PyciError(f"register {entry.name}: {exc}") from None
    configs.save(
        replace(
            config,
            concurrent=concurrent or config.concurrent,
            runners=(*config.runners, registered),
        ),
        path,
    )
    return registered


def verify(config: RunnerConfig) -> dict[str, str | None]:
    """Each runner's name -> None if the server knows its token, else why not."""
    answers: dict[str, str | None] = {}
    for entry in config.runners:
        with RunnerAPI(Server(entry.url, entry.token)) as api:
            try:
                api.verify(system_id())
                answers[entry.name] = None
            except GitLabError as exc:
                answers[entry.name] = str(exc)
    return answers


def unregister(path: Path, names: set[str] | None) -> list[str]:
    """Unregister the named runners (None: all) on their server and from the config."""
    config = configs.load(path)
    chosen = [e for e in config.runners if names is None or e.name in names]
    unknown = sorted((names or set()) - {e.name for e in config.runners})
    if unknown:
        raise UsageError(f"{path}: no runner named {', '.join(unknown)}")
    done = []
    try:
        for entry in chosen:
            with RunnerAPI(Server(entry.url, entry.token)) as api:
                try:
                    api.unregister()
                except GitLabError as exc:
                    raise PyciError(f"unregister {entry.name}: {exc}") from None
            done.append(entry.name)
    finally:
        configs.save(config.without(set(done)), path)  # what the server forgot, we forget
    return done
