"""Where a container's root file system comes from: an image of the store, a directory, or
the host's own root (read-only lower layer with private paths hidden)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from executors.base import ExecutorError
from executors.images.config import ImageConfig

# hidden when the host root is the lower layer: users' files, scratch space, runtime state
HOST_HIDDEN_PATHS = ("/home", "/root", "/tmp", "/run")


@dataclass(frozen=True)
class RootImage:
    name: str  # what the job asked for ("" for the host root)
    lower_dirs: tuple[str, ...]  # bottom first
    config: ImageConfig = field(default_factory=ImageConfig)
    hidden_paths: tuple[str, ...] = ()
    lower_cwd: str | None = None

    @property
    def is_host(self) -> bool:
        return self.name == ""


def host_root(extra_hidden: tuple[Path, ...] = ()) -> RootImage:
    hidden = list(HOST_HIDDEN_PATHS)
    for path in extra_hidden:
        text = str(path.resolve()) if path.exists() else str(path)
        if not any(text == h or text.startswith(h + "/") for h in hidden):
            hidden.append(text)
    return RootImage("", ("/",), ImageConfig(), tuple(hidden))


def directory_image(path: str) -> RootImage:
    if not os.path.isdir(path):
        raise ExecutorError(f"image directory {path} does not exist", "image_pull_failure")
    return RootImage(path, (path,))


PullPolicy = str | Sequence[str]


def store_image(
    name: str,
    home: Path | None,
    policy: PullPolicy,
    mirrors: tuple[str, ...] = (),
    insecure: tuple[str, ...] = (),
    docker_auth_config: str | None = None,
) -> RootImage:
    """Pull into the image store and return the image; any failure is image_pull_failure
    with a one-line message.

    `policy`: one pull policy, or GitLab's list form (each in order, the first that works
    wins). `docker_auth_config`: the job's DOCKER_AUTH_CONFIG variable; credentials are looked
    up there first, then in pyci's own environment's DOCKER_AUTH_CONFIG, then in
    `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`), gitlab-runner's order.
    `mirrors` are tried before Docker Hub; `insecure` hosts may be reached over plain HTTP."""
    from executors.images.auth import CredentialStore
    from executors.images.lowerdirs import lowerdir_option
    from executors.images.pull import pull_image, pull_with_policies
    from executors.images.store import ImageStore

    policies = (policy,) if isinstance(policy, str) else tuple(policy)
    store = ImageStore(home)
    try:
        auth = CredentialStore.from_environment(docker_auth_config)
        options = {"auth": auth, "mirrors": mirrors, "insecure": insecure}
        if len(policies) == 1:
            pulled = pull_image(store, name, policy=policies[0], **options)
        else:
            pulled = pull_with_policies(store, name, policies, **options)
        lower = lowerdir_option(store, pulled, other_options="upperdir=" + "x" * 200)
    except ExecutorError:
        raise
    except Exception as exc:
        text = str(exc) if str(exc).startswith(f"image {name}") else f"image {name}: {exc}"
        raise ExecutorError(_one_line(text), "image_pull_failure") from exc
    # LowerDirs lists TOP first; a spec lists them bottom first
    dirs = tuple(reversed(lower.dirs))
    return RootImage(name, dirs, pulled.config, (), str(lower.cwd) if lower.cwd else None)


def _one_line(message: str) -> str:
    # a registry's error body or a helper's output may span lines; a job's reason is one line
    return " ".join(message.split())


def resolve_image(
    name: str | None,
    home: Path | None,
    policy: PullPolicy,
    host_hidden: tuple[Path, ...] = (),
    mirrors: tuple[str, ...] = (),
    insecure: tuple[str, ...] = (),
    docker_auth_config: str | None = None,
) -> RootImage:
    """No name: the host root. An absolute path: that directory. Else: the image store."""
    if not name:
        return host_root(host_hidden)
    if name.startswith("/"):
        return directory_image(name)
    return store_image(name, home, policy, mirrors, insecure, docker_auth_config)


def has_bash(image: RootImage) -> bool:
    """Whether bash is in the image (any layer; a whiteout of it is rare enough to ignore)."""
    base = Path(image.lower_cwd) if image.lower_cwd else Path("/")
    for layer in image.lower_dirs:
        root = base / layer
        for candidate in ("bin/bash", "usr/bin/bash", "usr/local/bin/bash"):
            if os.path.lexists(root / candidate):
                return True
    return False
