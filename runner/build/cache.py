"""Job caches kept in `.pyci/cache/<key>/cache.tar` across runs.

Keys follow GitLab: a string key is expanded and sanitised as gitlab-runner does (`%2F` and
`\\` become `/`, `..` cannot climb out, trailing blanks dropped); `key:files` is GitLab's current
algorithm: the git blob ids of the matched files (content hashes, here of the job's copy, so an
uncommitted change to a lock file gives a new key), sorted, joined with `-`, SHA-1'd, after
`prefix` (default: the cache's index in the job's list); no matching file gives `default`.
No key at all is `default`.

Restoring tries the key, then each of `fallback_keys`, then `CACHE_FALLBACK_KEY`. Saving writes
a new archive beside the old one and renames it into place: two jobs saving the same key at
once leave one whole archive (the last), and a job extracting meanwhile keeps reading the file
it opened.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.build import fileset, globs
from runner.build.joblog import BuildLog
from runner.core.jobspec import CacheKey, CacheSpec

ARCHIVE = "cache.tar"


def sanitize_key(raw: str) -> str | None:
    """gitlab-runner's cache key clean-up; None when nothing usable is left."""
    key = raw
    for encoded, plain in (("%2f", "/"), ("%2F", "/"), ("%2e", "."), ("%2E", "."), ("\\", "/")):
        key = key.replace(encoded, plain)
    parts = posixpath.normpath("/" + key).lstrip("/").split("/")
    while parts and not parts[-1].rstrip():
        parts.pop()
    if parts:
        parts[-1] = parts[-1].rstrip()
    cleaned = "/".join(parts)
    return cleaned or None


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def files_digest(project_dir: Path, patterns: tuple[str, ...]) -> str | None:
    ids: set[str] = set()
    for pattern in dict.fromkeys(p.strip() for p in patterns if p and p.strip()):
        if pattern.startswith("./"):
            continue  # GitLab looks paths up in the repository as written: `./x` finds nothing
        for rel in globs.find_paths(project_dir, pattern):
            path = project_dir / rel
            if path.is_file() and not path.is_symlink():
                ids.add(git_blob_id(path))
    if not ids:
        return None
    return hashlib.sha1("-".join(sorted(ids)).encode()).hexdigest()


def cache_key(
    key: CacheKey, index: int, project_dir: Path, expand: Callable[[str], str]
) -> str | None:
    """The key as GitLab computes it, sanitised; None if it sanitises to nothing."""
    if key.files or (key.value is None and key.prefix is not None):
        prefix = expand(key.prefix) if key.prefix else str(index)
        digest = files_digest(project_dir, key.files) or "default"
        raw = f"{prefix}-{digest}" if prefix else digest
    elif key.value is not None:
        raw = expand(key.value)
    else:
        raw = "default"
    return sanitize_key(raw)


@dataclass(frozen=True)
class CacheStore:
    root: Path  # .pyci/cache

    def archive_path(self, key: str) -> Path:
        return self.root / key / ARCHIVE

    def restore(self, key: str, project_dir: Path) -> bool:
        path = self.archive_path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return False
        with handle, tarfile.open(fileobj=handle, mode="r:") as tar:
            tar.extractall(project_dir, filter="data")
        return True

    def save(self, key: str, project_dir: Path, entries: list[str]) -> None:
        target = self.archive_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cache-", suffix=".tar", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w:") as tar:
                for rel in entries:
                    tar.add(project_dir / rel, arcname=rel, recursive=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _policy_allows(spec: CacheSpec, action: str) -> bool:
    return spec.policy == "pull-push" or spec.policy == action


def restore_caches(
    caches: tuple[CacheSpec, ...],
    store: CacheStore,
    project_dir: Path,
    variables: Mapping[str, str],
    expand: Callable[[str], str],
    log: BuildLog,
) -> bool:
    """The restore_cache stage; False when there was nothing to do (no section shown)."""
    work = [(i, c) for i, c in enumerate(caches) if c.paths or c.untracked]
    if not work:
        return False
    for index, spec in work:
        key = cache_key(spec.key, index, project_dir, expand)
        if key is None:
            log.notice("Skipping cache extraction due to empty cache key")
            continue
        if not _policy_allows(spec, "pull"):
            log.notice(f"Not downloading cache {key} due to policy")
            continue
        candidates = [key]
        for fallback in (*spec.fallback_keys, variables.get("CACHE_FALLBACK_KEY", "")):
            cleaned = sanitize_key(expand(fallback)) if fallback else None
            if cleaned and cleaned not in candidates:
                candidates.append(cleaned)
        for candidate in candidates:
            log.notice(f"Checking cache for {candidate}...")
            try:
                found = store.restore(candidate, project_dir)
            except (OSError, tarfile.TarError) as exc:
                log.warning(f"Failed to extract cache {candidate}: {exc}")
                continue
            if found:
                log.notice("Successfully extracted cache")
                break
            log.warning(f"{store.archive_path(candidate)}: file does not exist")
        else:
            log.warning("Failed to extract cache")
    return True


def archive_caches(
    caches: tuple[CacheSpec, ...],
    store: CacheStore,
    project_dir: Path,
    untracked: Callable[[], list[str]],
    expand: Callable[[str], str],
    succeeded: bool,
    log: BuildLog,
) -> bool:
    """The archive_cache stage; False when there was nothing to do (no section shown)."""
    wanted = [
        (i, c)
        for i, c in enumerate(caches)
        if (c.paths or c.untracked)
        and (c.when == "always" or (c.when == "on_success") == succeeded)
    ]
    if not wanted:
        return False
    for index, spec in wanted:
        key = cache_key(spec.key, index, project_dir, expand)
        if key is None:
            log.notice("Skipping cache archiving due to empty cache key")
            continue
        if not _policy_allows(spec, "push"):
            log.notice(f"Not uploading cache {key} due to policy")
            continue
        log.notice(f"Creating cache {key}...")
        entries = fileset.select(
            project_dir,
            [expand(p) for p in spec.paths],
            (),
            untracked if spec.untracked else None,
            log,
        )
        if not entries:
            log.warning("No files to archive; the cache is left as it was")
            continue
        try:
            store.save(key, project_dir, entries)
        except (OSError, tarfile.TarError) as exc:
            log.warning(f"Failed to create cache: {exc}")
            continue
        log.notice("Created cache")
    return True
