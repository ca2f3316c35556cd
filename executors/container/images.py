"""Where a container's root file system comes from: an image of the store, a directory, or
the host's own root (read-only lower layer with private paths hidden)."""

from __future__ import annotations

import os
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


def store_image(
    name: str,
    home: Path | None,
    policy: str,
    mirrors: tuple[str, ...] = (),
    insecure: tuple[str, ...] = (),
) -> RootImage:
    """Pull (per `policy`; through `mirrors` first, plain HTTP allowed to `insecure` hosts)
    and return a store image; failures are image_pull_failure."""
    from executors.images.lowerdirs import lowerdir_option
    from executors.images.pull import pull_image
    from executors.images.store import ImageStore

    store = ImageStore(home)
    try:
        pulled = pull_image(store, name, policy=policy, mirrors=mirrors, insecure=insecure)
        lower = lowerdir_option(store, pulled, other_options="upperdir=" + "x" * 200)
    except ExecutorError:
        raise
    except Exception as exc:
        raise ExecutorError(f"image {name}: {exc}", "image_pull_failure") from exc
    # LowerDirs lists TOP first; a spec lists them bottom first
    dirs = tuple(reversed(lower.dirs))
    return RootImage(name, dirs, pulled.config, (), str(lower.cwd) if lower.cwd else None)


def resolve_image(
    name: str | None,
    home: Path | None,
    policy: str,
    host_hidden: tuple[Path, ...] = (),
    mirrors: tuple[str, ...] = (),
    insecure: tuple[str, ...] = (),
) -> RootImage:
    """No name: the host root. An absolute path: that directory. Else: the image store."""
    if not name:
        return host_root(host_hidden)
    if name.startswith("/"):
        return directory_image(name)
    return store_image(name, home, policy, mirrors, insecure)


def has_bash(image: RootImage) -> bool:
    """Whether bash is in the image (any layer; a whiteout of it is rare enough to ignore)."""
    base = Path(image.lower_cwd) if image.lower_cwd else Path("/")
    for layer in image.lower_dirs:
        root = base / layer
        for candidate in ("bin/bash", "usr/bin/bash", "usr/local/bin/bash"):
            if os.path.lexists(root / candidate):
                return True
    return False
