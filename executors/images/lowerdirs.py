"""The overlayfs `lowerdir` list of an image, in a form that fits one mount(2) call.

`mount(2)` copies at most one page (4096 bytes) of options. With absolute store paths
(~100 bytes each) that is about 40 layers. Two ways past it, both offered here:

* kernels with the new mount API (6.5+) take layers one by one with
  `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", path)`: use `absolute_lowerdirs` (TOP first);
* elsewhere, `lowerdir_option` falls back to the store's short links (`l/<12 hex>`, relative
  to the store's home): the caller `chdir`s to `LowerDirs.cwd` before `mount(2)`, as Docker's
  overlay2 driver does with its `l/` directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from executors.images.store import ImageStore, PulledImage

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class LowerDirs:
    """`dirs` TOP first (overlayfs order); relative to `cwd` when `cwd` is set."""

    dirs: tuple[str, ...]
    cwd: Path | None = None

    def option(self) -> str:
        """`lowerdir=a:b:c`, with overlayfs's escapes for `:`, `,` and `\\` in paths."""
        return "lowerdir=" + ":".join(escape(d) for d in self.dirs)


def escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def absolute_lowerdirs(image: PulledImage) -> tuple[str, ...]:
    """For `fsconfig` `lowerdir+` (one call per layer, no length limit): TOP first."""
    return tuple(str(d) for d in reversed(image.layer_dirs))


def lowerdir_option(
    store: ImageStore, image: PulledImage, other_options: str = "", page_size: int = PAGE_SIZE
) -> LowerDirs:
    """Absolute paths when `lowerdir=...` plus `other_options` fits in one page (with its NUL),
    else the short links with `cwd` = the store's home. Raises ValueError when even short
    links do not fit (hundreds of layers)."""
    budget = page_size - 1 - (len(other_options) + 1 if other_options else 0)
    absolute = LowerDirs(absolute_lowerdirs(image))
    if len(absolute.option().encode()) <= budget:
        return absolute
    if not image.chain_ids:
        raise ValueError("image has no chain ids: cannot use short layer links")
    short = LowerDirs(
        tuple(os.path.relpath(store.short_link(c), store.home) for c in reversed(image.chain_ids)),
        cwd=store.home,
    )
    if len(short.option().encode()) > budget:
        raise ValueError(f"{len(image.chain_ids)} layers do not fit one mount option page")
    return short
