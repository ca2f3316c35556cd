"""The content-addressed image store under `$PYCI_HOME` (default `~/.local/share/pyci`).

    blobs/sha256/<hex>              compressed layers, configs, manifests: verified bytes
    layers/sha256/<chain hex>/diff  one extracted layer (OCI ChainID), overlayfs-ready
    layers/sha256/<chain hex>/layer.json   its diff_id, blob digest and size
    l/<12 hex>                      short symlink to a layer's diff (for long lowerdir lists)
    images/sha256/<hex>.json        an image record, by manifest digest
    refs/<quoted reference>         `registry/repo:tag` or `registry/repo@digest` -> manifest digest
    tmp/, locks/                    work in progress, lock files

Everything is shared by all jobs and pipelines: a blob or layer exists once, whatever image
or how many references use it. `get` reads two small files and stats the layers: no network.

Layers hold what images chose: setuid-root files, 0666 device nodes. The home is a private
directory (0700, see executors/statedirs.py) and each layer's own parent `layers/sha256/<id>`
is 0700 too, so no local user can walk to them; containers still can (overlayfs reaches its
layers with the mounting root's credentials).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from executors.images.config import ImageConfig, image_config_from_record
from executors.images.errors import ImagePullError
from executors.images.home import default_home
from executors.images.locks import (
    file_lock,
    hold_for_process,
    try_lock,
    write_atomic,
    write_json_atomic,
)
from executors.images.reference import Reference, parse_reference
from executors.images.usage import Candidate, disk_usage, plan_eviction
from executors.sizes import parse_size
from executors.statedirs import private_dir

SHORT_ID_LEN = 12


@dataclass(frozen=True)
class PulledImage:
    reference: str  # canonical, e.g. docker.io/library/alpine:latest
    digest: str  # the repository digest (of the index when the tag names one)
    layer_dirs: tuple[Path, ...]  # extracted layer dirs, BOTTOM first
    config: ImageConfig
    manifest_digest: str = ""  # the platform manifest actually pulled
    chain_ids: tuple[str, ...] = ()
    requests: int = field(default=0, compare=False)  # HTTP requests this pull made


@dataclass(frozen=True)
class LayerRecord:
    digest: str  # of the compressed blob
    diff_id: str
    chain_id: str
    size: int  # compressed bytes
    media_type: str = ""


@dataclass(frozen=True)
class ImageRecord:
    manifest_digest: str
    repo_digest: str
    config_digest: str
    layers: tuple[LayerRecord, ...]
    config: ImageConfig
    platform: str = ""
    created: str = ""  # from the image config

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def to_json(self) -> dict:
        return {
            "manifest_digest": self.manifest_digest,
            "repo_digest": self.repo_digest,
            "config_digest": self.config_digest,
            "layers": [layer.__dict__ for layer in self.layers],
            "config": self.config.to_json(),
            "platform": self.platform,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: dict) -> ImageRecord:
        return cls(
            manifest_digest=data["manifest_digest"],
            repo_digest=data["repo_digest"],
            config_digest=data["config_digest"],
            layers=tuple(LayerRecord(**layer) for layer in data["layers"]),
            config=image_config_from_record(data["config"]),
            platform=data.get("platform", ""),
            created=data.get("created", ""),
        )


@dataclass(frozen=True)
class PruneResult:
    blobs: int
    layers: int
    bytes_freed: int  # allocated bytes removed: blobs, layers and temp debris
    images: int = 0  # image records dropped to fit the size cap (least recently used)
    temp: int = 0  # entries of tmp/ removed (what killed pulls left)


def store_max_from_env(env: dict[str, str] | None = None) -> int | None:
    """`PYCI_STORE_MAX` (e.g. `10G`): the store's size cap in bytes; None when unset."""
    text = (env if env is not None else os.environ).get("PYCI_STORE_MAX", "").strip()
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ImagePullError(f"PYCI_STORE_MAX: {exc}") from None


def _hex(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or hexpart.strip("0123456789abcdef"):
        raise ImagePullError(f"unsupported or malformed digest {digest!r}")
    return hexpart


class ImageStore:
    def __init__(self, home: Path | None = None, max_bytes: int | None = None):
        """`max_bytes`: the size cap (default `PYCI_STORE_MAX`, unset: no cap)."""
        self.home = private_dir(Path(home) if home is not None else default_home())
        self.max_bytes = max_bytes if max_bytes is not None else store_max_from_env()
        self.blobs = self.home / "blobs" / "sha256"
        self.layers = self.home / "layers" / "sha256"
        self.short = self.home / "l"
        self.images = self.home / "images" / "sha256"
        self.refs = self.home / "refs"
        self.tmp = self.home / "tmp"
        self.locks = self.home / "locks"

    # ---- reading (no network, few syscalls) -------------------------------------------

    def get(self, reference: str | Reference) -> PulledImage | None:
        ref = reference if isinstance(reference, Reference) else parse_reference(reference)
        manifest_digest = self.resolve(ref)
        if manifest_digest is None:
            return None
        # held before the record is read: an eviction that got in first has removed the
        # record by the time the hold is granted, one that comes later skips this image
        hold_for_process(self._image_lock(manifest_digest))
        record = self.record(manifest_digest)
        if record is None:
            return None
        dirs = tuple(self.layer_dir(layer.chain_id) for layer in record.layers)
        if not all(d.is_dir() for d in dirs):
            return None  # pruned or half-removed: pull again
        with contextlib.suppress(OSError):
            os.utime(self._record_path(manifest_digest))  # last used: what LRU eviction reads
        return PulledImage(
            reference=str(ref),
            digest=ref.digest or record.repo_digest,
            layer_dirs=dirs,
            config=record.config,
            manifest_digest=record.manifest_digest,
            chain_ids=tuple(layer.chain_id for layer in record.layers),
        )

    def resolve(self, ref: Reference) -> str | None:
        """The manifest digest a reference points at in this store."""
        keys = [f"{ref.name}@{ref.digest}"] if ref.digest else [str(ref)]
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                return self._ref_path(key).read_text().strip()
        if ref.digest and (self.images / f"{_hex(ref.digest)}.json").is_file():
            return ref.digest  # pinned to a platform manifest directly
        return None

    def _record_path(self, manifest_digest: str) -> Path:
        return self.images / f"{_hex(manifest_digest)}.json"

    def _image_lock(self, manifest_digest: str) -> Path:
        return self.locks / f"image-{_hex(manifest_digest)}.lock"

    def record(self, manifest_digest: str) -> ImageRecord | None:
        try:
            data = json.loads(self._record_path(manifest_digest).read_bytes())
        except FileNotFoundError:
            return None
        return ImageRecord.from_json(data)

    def references(self) -> dict[str, str]:
        """Every reference -> manifest digest."""
        found: dict[str, str] = {}
        if self.refs.is_dir():
            for entry in os.scandir(self.refs):
                with contextlib.suppress(FileNotFoundError):
                    found[urllib.parse.unquote(entry.name)] = Path(entry.path).read_text().strip()
        return found

    def records(self) -> list[ImageRecord]:
        out = []
        if self.images.is_dir():
            for entry in sorted(os.scandir(self.images), key=lambda e: e.name):
                if entry.name.endswith(".json"):
                    record = self.record("sha256:" + entry.name[: -len(".json")])
                    if record:
                        out.append(record)
        return out

    def blob_path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def layer_dir(self, chain_id: str) -> Path:
        return self.layers / _hex(chain_id) / "diff"

    def has_layer(self, chain_id: str) -> bool:
        return self.layer_dir(chain_id).is_dir()

    def short_link(self, chain_id: str) -> Path:
        return self.short / _hex(chain_id)[:SHORT_ID_LEN]

    # ---- writing: temp + rename under a lock ------------------------------------------

    @contextlib.contextmanager
    def using(self) -> Iterator[None]:
        """Held (shared) by a pull for its whole length, so prune waits for it."""
        with file_lock(self.locks / "store.lock", shared=True):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with file_lock(self.locks / "store.lock"):
            yield

    def partial_blob(self, digest: str) -> Path:
        """Where blob `digest` is written while it downloads (under its lock)."""
        return self.tmp / f"blob-{_hex(digest)}.partial"

    def add_blob(self, digest: str, fill: Callable[[BinaryIO], None]) -> Path:
        """Make blob `digest` present: `fill` writes (and verifies) it into a temp file.

        Two processes adding the same blob serialize; the second finds it done. The temp
        file has a fixed name: what a pull killed with `kill -9` wrote is still there, and
        `fill` gets it positioned at its end, to resume (with `Range`) instead of starting
        over, or to truncate it first. A failure that Python sees (bad digest, refused
        layer, Ctrl-C) removes it."""
        final = self.blob_path(digest)
        with file_lock(self.locks / f"blob-{_hex(digest)}.lock"):
            if final.is_file():
                return final
            self.tmp.mkdir(parents=True, exist_ok=True)
            tmp = self.partial_blob(digest)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "r+b") as out:
                    out.seek(0, os.SEEK_END)
                    fill(out)
                os.chmod(tmp, 0o644)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return final

    def add_layer(self, layer: LayerRecord, extract: Callable[[Path], None]) -> Path:
        """Make layer `layer.chain_id` present: `extract` fills a temp dir (and verifies)."""
        final = self.layers / _hex(layer.chain_id)
        with file_lock(self.locks / f"layer-{_hex(layer.chain_id)}.lock"):
            if (final / "diff").is_dir():
                return final / "diff"
            self.tmp.mkdir(parents=True, exist_ok=True)
            # mkdtemp's 0700 stays: it is the private parent of the layer, here and in place
            work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="layer-"))
            try:
                (work / "diff").mkdir()
                extract(work / "diff")
                (work / "layer.json").write_text(json.dumps(layer.__dict__, sort_keys=True))
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.exists():  # debris of a crash between rename and nothing: replace
                    shutil.rmtree(final)
                os.rename(work, final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            self._link_short(layer.chain_id)
        return final / "diff"

    def _link_short(self, chain_id: str) -> None:
        link = self.short_link(chain_id)
        target = f"../layers/sha256/{_hex(chain_id)}/diff"
        if os.path.islink(link) and os.readlink(link) == target:
            return
        self.short.mkdir(parents=True, exist_ok=True)
        tmp = self.short / f".tmp-{os.getpid()}-{_hex(chain_id)[:SHORT_ID_LEN]}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)

    def save_image(self, record: ImageRecord, references: list[str]) -> None:
        """The record first, then the references to it: a reader never sees a dangling ref."""
        path = self.images / f"{_hex(record.manifest_digest)}.json"
        write_json_atomic(path, record.to_json(), self.tmp)
        for reference in references:
            write_atomic(self._ref_path(reference), record.manifest_digest.encode(), self.tmp)

    def _ref_path(self, reference: str) -> Path:
        return self.refs / urllib.parse.quote(reference, safe="")

    # ---- removing ---------------------------------------------------------------------

    def remove(self, reference: str) -> list[str]:
        """Drop a reference (and its `@digest` twin); the record goes when nothing points
        at it. Blobs and layers stay until `prune`. Returns the references removed."""
        ref = parse_reference(reference)
        with self.exclusive():
            target = self.resolve(ref)
            if target is None:
                raise ImagePullError(f"image {ref} is not in the store")
            pointing = [name for name, d in self.references().items() if d == target]
            if ref.digest:  # a pinned rm removes every name of that image, like docker rmi
                doomed = pointing
            else:
                doomed = [str(ref)]
                # like docker rmi: once no tag is left, the digest names go with the image
                if all("@" in name for name in pointing if name != str(ref)):
                    doomed = pointing
            for name in doomed:
                self._ref_path(name).unlink(missing_ok=True)
            if set(doomed) >= set(pointing):
                (self.images / f"{_hex(target)}.json").unlink(missing_ok=True)
            removed = sorted(doomed)
            return removed

    def prune(self, max_bytes: int | None = None) -> PruneResult:
        """Delete blobs and layers no image record uses, dangling refs and temp debris;
        with `max_bytes` (default: the store's cap), first drop least recently used images
        that no live process holds until the rest fit."""
        with self.exclusive():
            return self._collect(self.max_bytes if max_bytes is None else max_bytes)

    def enforce_cap(self) -> PruneResult | None:
        """After a pull: evict down to the cap, unless another pull or prune has the store
        (then whichever of them finishes last does it). None when there is nothing to do."""
        if self.max_bytes is None:
            return None
        fd = try_lock(self.locks / "store.lock")
        if fd is None:
            return None
        try:
            return self._collect(self.max_bytes)
        finally:
            os.close(fd)

    def _collect(self, max_bytes: int | None) -> PruneResult:
        records = self.records()
        evicted = 0
        if max_bytes is not None:
            evicted = self._evict(records, max_bytes)
            records = self.records()
        keep_blobs, keep_layers = set(), set()
        for record in records:
            keep_blobs.add(_hex(record.config_digest))
            for layer in record.layers:
                keep_blobs.add(_hex(layer.digest))
                keep_layers.add(_hex(layer.chain_id))
        kept_records = {record.manifest_digest for record in records}
        for name, digest in self.references().items():
            if digest not in kept_records:
                self._ref_path(name).unlink(missing_ok=True)
        blobs = layers = temp = freed = 0
        if self.blobs.is_dir():
            for entry in os.scandir(self.blobs):
                if entry.name not in keep_blobs:
                    freed += disk_usage(entry.path)
                    os.unlink(entry.path)
                    blobs += 1
        if self.layers.is_dir():
            for entry in os.scandir(self.layers):
                if entry.name not in keep_layers:
                    freed += disk_usage(entry.path)
                    shutil.rmtree(entry.path)
                    layers += 1
        if self.short.is_dir():
            for entry in os.scandir(self.short):
                if not os.path.exists(entry.path):
                    os.unlink(entry.path)
        if self.tmp.is_dir():
            for entry in os.scandir(self.tmp):
                # nothing writes now (we hold the store exclusively): all of it is debris
                freed += disk_usage(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                temp += 1
        return PruneResult(blobs, layers, freed, evicted, temp)

    def _evict(self, records: list[ImageRecord], max_bytes: int) -> int:
        """Drop the records (and names) of least recently used images until the others fit;
        returns how many. Runs under the exclusive store lock."""
        sizes: dict[str, int] = {}
        candidates = []
        for record in records:
            objects = {f"blob:{_hex(record.config_digest)}"}
            for layer in record.layers:
                objects.add(f"blob:{_hex(layer.digest)}")
                objects.add(f"layer:{_hex(layer.chain_id)}")
            for name in objects:
                if name not in sizes:
                    kind, _, hexpart = name.partition(":")
                    path = self.blobs / hexpart if kind == "blob" else self.layers / hexpart
                    sizes[name] = disk_usage(str(path))
            try:
                used = self._record_path(record.manifest_digest).stat().st_mtime
            except FileNotFoundError:
                continue
            candidates.append(Candidate(record.manifest_digest, used, frozenset(objects)))
        held: list[int] = []

        def may_evict(candidate: Candidate) -> bool:
            fd = try_lock(self._image_lock(candidate.key))
            if fd is None:
                return False  # a live process uses it
            held.append(fd)
            return True

        try:
            chosen = plan_eviction(candidates, sizes, max_bytes, may_evict)
            for candidate in chosen:
                for name, digest in self.references().items():
                    if digest == candidate.key:
                        self._ref_path(name).unlink(missing_ok=True)
                self._record_path(candidate.key).unlink(missing_ok=True)
        finally:
            for fd in held:
                os.close(fd)
        return len(chosen)
