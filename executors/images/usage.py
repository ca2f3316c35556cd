"""How much disk the store uses, and which images a size cap evicts (least recently used first).

Sizes are allocated blocks (`st_blocks`), what `du` counts and what a full disk runs out of: a
sparse 8 GiB file with a few KiB of data costs a few KiB, and "freed N B" says what really came
back. A hard-linked file is counted once.

`PYCI_STORE_MAX` (e.g. `10G`) caps the store: after each pull that added something, and on
`pyci image prune`, images are dropped least recently used first (the mtime of an image's
record, touched each time a job gets it) until what the remaining images need fits. An image
that a live pyci process holds (see `ImageStore.get`) is never dropped, so a store can stay
above its cap while everything in it is in use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

BLOCK = 512  # the unit of st_blocks, whatever the file system's block size


def disk_usage(path: str) -> int:
    """Bytes allocated to `path` and everything below it (symlinks not followed)."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return 0
    total = top.st_blocks * BLOCK
    if not os.path.isdir(path) or os.path.islink(path):
        return total
    seen: set[int] = set()
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                info = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if info.st_nlink > 1 and not os.path.isdir(os.path.join(root, name)):
                if info.st_ino in seen:
                    continue
                seen.add(info.st_ino)
            total += info.st_blocks * BLOCK
    return total


@dataclass(frozen=True)
class Candidate:
    """One image as eviction sees it: the objects (blob and layer keys) it needs."""

    key: str  # manifest digest
    last_used: float
    objects: frozenset[str]


def needed_bytes(candidates: Iterable[Candidate], sizes: dict[str, int]) -> int:
    """What the images need together: objects they share are counted once."""
    needed: set[str] = set()
    for candidate in candidates:
        needed |= candidate.objects
    return sum(sizes.get(name, 0) for name in needed)


def plan_eviction(
    candidates: Sequence[Candidate],
    sizes: dict[str, int],
    max_bytes: int,
    may_evict: Callable[[Candidate], bool],
) -> list[Candidate]:
    """The images to drop, least recently used first, until the rest fit in `max_bytes`.

    `may_evict` is asked just before an image is chosen (it takes the image's lock, so an
    image in use is skipped); the caller drops each chosen image while still holding it."""
    kept = sorted(candidates, key=lambda c: c.last_used)
    chosen: list[Candidate] = []
    for candidate in list(kept):
        if needed_bytes(kept, sizes) <= max_bytes:
            break
        if may_evict(candidate):
            kept.remove(candidate)
            chosen.append(candidate)
    return chosen
