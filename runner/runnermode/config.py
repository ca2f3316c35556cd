"""The runner config file: TOML, mode 0600, the runners this box serves and their tokens.

    concurrent = 2          # jobs at once, over all runners
    check_interval = 3      # seconds between job requests when there is none

    [[runners]]
    name = "build-box-1"
    url = "https://gitlab.example.com"
    token = "glrt-…"
    executor = "container"
    builds_dir = "/var/lib/pyci-runner/builds"   # optional
    cache_dir = "/var/lib/pyci-runner/cache"     # optional
    [runners.container]
    image = "alpine:3.20"   # jobs without image: (required: never the host's root)
    network = "bridge"

The names follow gitlab-runner's config.toml where it has one. The stdlib reads it (`tomllib`);
the writer below is ours: the file holds a handful of known keys, not worth a dependency. A
file other users could read is refused: it holds tokens.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from runner.core.errors import UsageError

NETWORKS = ("bridge", "host", "none")
# where a runner runs its jobs: containers, or (isolating nothing, as gitlab-runner's) the shell
EXECUTORS = ("container", "shell")


@dataclass(frozen=True)
class RunnerEntry:
    name: str
    url: str
    token: str
    default_image: str
    executor: str = "container"
    network: str = "bridge"
    builds_dir: str | None = None
    cache_dir: str | None = None
    tag_list: tuple[str, ...] = ()
    run_untagged: bool = True
    limit: int = 0  # jobs at once for this runner; 0: only `concurrent` limits


@dataclass(frozen=True)
class RunnerConfig:
    concurrent: int = 1
    check_interval: float = 3.0
    runners: tuple[RunnerEntry, ...] = field(default_factory=tuple)

    def without(self, names: set[str]) -> RunnerConfig:
        return replace(self, runners=tuple(r for r in self.runners if r.name not in names))


def default_path() -> Path:
    if os.geteuid() == 0:
        return Path("/etc/pyci/runner.toml")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "pyci" / "runner.toml"


def load(path: Path) -> RunnerConfig:
    """The config at `path`; a missing file is an empty config."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return RunnerConfig()
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise UsageError(f"{path}: other users can read it (it holds tokens): chmod 600 {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    return _parse(data, path)


def _parse(data: dict, path: Path) -> RunnerConfig:
    def fail(message: str) -> UsageError:
        return UsageError(f"{path}: {message}")

    concurrent = data.get("concurrent", 1)
    interval = data.get("check_interval", 3.0)
    if not isinstance(concurrent, int) or concurrent < 1:
        raise fail("concurrent: must be a whole number, at least 1")
    if not isinstance(interval, int | float) or interval <= 0:
        raise fail("check_interval: must be a number of seconds, more than 0")
    entries = []
    for index, item in enumerate(data.get("runners", [])):
        where = f"runners[{index}]"
        if not isinstance(item, dict):
            raise fail(f"{where}: not a table")
        for key in ("name", "url", "token"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise fail(f"{where}.{key}: missing or not a string")
        executor = item.get("executor", "container")
        if executor not in EXECUTORS:
            raise fail(f"{where}.executor: {executor!r}: one of {', '.join(EXECUTORS)}")
        container = item.get("container", {})
        image = container.get("image") if isinstance(container, dict) else None
        if executor == "container" and (not isinstance(image, str) or not image):
            raise fail(f"{where}.container.image: required (jobs never run over the host's root)")
        image = image if isinstance(image, str) else ""
        network = container.get("network", "bridge") if isinstance(container, dict) else "bridge"
        if network not in NETWORKS:
            raise fail(f"{where}.container.network: one of {', '.join(NETWORKS)}")
        tags = item.get("tag_list", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise fail(f"{where}.tag_list: a list of strings")
        limit = item.get("limit", 0)
        if not isinstance(limit, int) or limit < 0:
            raise fail(f"{where}.limit: a whole number, 0 for no limit")
        entries.append(
            RunnerEntry(
                name=item["name"],
                url=item["url"],
                token=item["token"],
                default_image=image,
                executor=executor,
                network=network,
                builds_dir=_optional_str(item, "builds_dir", where, fail),
                cache_dir=_optional_str(item, "cache_dir", where, fail),
                tag_list=tuple(tags),
                run_untagged=bool(item.get("run_untagged", True)),
                limit=limit,
            )
        )
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise fail(f"runner names must be unique: {', '.join(duplicates)}")
    return RunnerConfig(concurrent, float(interval), tuple(entries))


def _optional_str(item: dict, key: str, where: str, fail) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise fail(f"{where}.{key}: not a string")
    return value


def save(config: RunnerConfig, path: Path) -> None:
    """Write `config` to `path` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(prefix=".runner-", suffix=".toml", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp makes it 0600 already; said here on purpose
        with os.fdopen(fd, "w") as out:
            out.write(dumps(config))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _string(value: str) -> str:
    # a JSON string is a TOML basic string (same escapes for ", \\ and control characters)
    return json.dumps(value)


def dumps(config: RunnerConfig) -> str:
    lines = [
        f"concurrent = {config.concurrent}",
        f"check_interval = {config.check_interval:g}",
    ]
    for entry in config.runners:
        lines += ["", "[[runners]]"]
        lines.append(f"name = {_string(entry.name)}")
        lines.append(f"url = {_string(entry.url)}")
        lines.append(f"token = {_string(entry.token)}")
        lines.append(f"executor = {_string(entry.executor)}")
        if entry.builds_dir is not None:
            lines.append(f"builds_dir = {_string(entry.builds_dir)}")
        if entry.cache_dir is not None:
            lines.append(f"cache_dir = {_string(entry.cache_dir)}")
        lines.append("tag_list = [" + ", ".join(_string(t) for t in entry.tag_list) + "]")
        lines.append(f"run_untagged = {'true' if entry.run_untagged else 'false'}")
        lines.append(f"limit = {entry.limit}")
        lines.append("[runners.container]")
        lines.append(f"image = {_string(entry.default_image)}")
        lines.append(f"network = {_string(entry.network)}")
    return "\n".join(lines) + "\n"
