"""Unpack one layer tarball into an empty directory, safely and exactly.

Safe on hostile input: every entry name and hard-link target is checked to stay inside the
layer (`..`, absolute paths rejected) and no entry may be written *through* a symlink or other
non-directory that an earlier entry of the same tar created (the directory starts empty, so
those are the only ones there can be). Files are created with `O_NOFOLLOW | O_EXCL`, metadata is
set with the `l*`/fd variants, so nothing ever follows a link the tar planted.

Exact on honest input: owners, modes (setuid, setgid, sticky), mtimes (directories last, after
their children), PAX xattrs (`SCHILY.xattr.*`, including binary `security.capability`), device
nodes, fifos, symlinks and hard links are recreated. OCI whiteouts become overlayfs ones:
`.wh.NAME` a 0/0 character device named NAME, `.wh..wh..opq` the `trusted.overlay.opaque=y`
xattr on its directory. Needs root (mknod, chown, trusted.* xattrs), like the runtime itself.

The uncompressed stream is hashed while it is read: the result is the layer's diff_id, which
the caller compares with the image config before the layer becomes visible.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import os
import shutil
import stat
import tarfile
import urllib.parse
from pathlib import Path
from typing import BinaryIO

import zstandard

from executors.images.decompress import COPY_CHUNK, InflatePump, open_decompressed
from executors.images.errors import ImagePullError, UnsafeLayerError

__all__ = ["OPAQUE_XATTR", "UnsafeLayerError", "extract_layer"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, in every
    thread); 0o777 (meaning: always chmod) when /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o777


def extract_layer(blob: BinaryIO, dest: Path, what: str = "layer") -> str:
    """Extract the (possibly compressed) layer `blob` into the empty directory `dest`.

    Returns the diff_id (`sha256:` of the uncompressed tar). Raises `UnsafeLayerError` for a
    hostile or broken tar; the caller removes `dest` then.
    """
    pump = InflatePump(open_decompressed(blob))
    try:
        try:
            with tarfile.open(fileobj=io.BufferedReader(pump, COPY_CHUNK), mode="r|") as tar:
                _Extractor(dest, tar, what).run()
            return pump.finish()
        except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
            if isinstance(exc, ImagePullError):
                raise
            raise UnsafeLayerError(f"{what}: cannot extract: {exc}") from exc
    except BaseException:
        # a blob still downloading (growing.GrowingBlob) stops feeding the inflate thread
        abort = getattr(blob, "abort", None)
        if abort is not None:
            abort()
        raise
    finally:
        pump.close()


class _Extractor:
    """Walks the tar in order; directories, hard links and checks happen in this thread,
    leaf entries (files, symlinks, devices, whiteouts) go to a few worker threads, since
    creating an inode is a system call that releases the GIL and the tar parser can go on.
    A path is never handed out twice at once, and everything is finished before a hard
    link (its target must exist), a replaced directory, or the final directory metadata."""

    WORKERS = 4
    MAX_INFLIGHT = 64 << 20  # bytes of file data read ahead of the workers
    INLINE_SIZE = 16 << 20  # larger files are streamed by this thread
    BATCH = 64  # leaf jobs handed to a worker at once
    BATCH_BYTES = 4 << 20

    def __init__(self, dest: Path, archive: tarfile.TarFile, what: str):
        self.root = str(dest)
        self.archive = archive
        self.what = what
        self.non_dirs: set[str] = set()  # relative paths this tar made that are not dirs
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []  # metadata applied at the end
        self.known_dirs: set[str] = set()  # parents already created: saves a stat per entry
        self.pending: set[str] = set()
        self.futures: list[concurrent.futures.Future] = []
        self.inflight = 0
        self.batch: list = []
        self.batch_bytes = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(self.WORKERS, "pyci-extract")
        # who owns a new file: us, unless the layer dir is setgid (its group then)
        root_stat = os.stat(self.root)
        group = root_stat.st_gid if root_stat.st_mode & stat.S_ISGID else os.getegid()
        self.creator = (os.geteuid(), group)
        self.umask = _read_umask()  # per layer: code elsewhere may change it between pulls

    def run(self) -> None:
        try:
            for member in self.archive:
                self.entry(member)
            self.flush()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        # deepest first, so setting a parent's mtime is the last change inside it
        for path, member in reversed(self.dirs):
            if (member.uid, member.gid) != self.creator:
                os.lchown(path, member.uid, member.gid)
            os.chmod(path, member.mode & 0o7777)
            os.utime(path, ns=(_ns(member.mtime), _ns(member.mtime)), follow_symlinks=False)

    def submit(self, rel: str, job, size: int = 0) -> None:
        """Queue a leaf job; jobs go to the pool in batches, which keeps thread wake-ups
        (futex calls) few compared with the inodes created."""
        if rel in self.pending or rel in self.known_dirs or self.inflight > self.MAX_INFLIGHT:
            self.flush()
        self.pending.add(rel)
        self.inflight += size
        self.batch.append(job)
        self.batch_bytes += size
        if len(self.batch) >= self.BATCH or self.batch_bytes >= self.BATCH_BYTES:
            self.send_batch()

    def send_batch(self) -> None:
        if self.batch:
            jobs, self.batch, self.batch_bytes = self.batch, [], 0
            self.futures.append(self.pool.submit(_run_all, jobs))

    def flush(self) -> None:
        self.send_batch()
        futures, self.futures = self.futures, []
        self.pending.clear()
        self.inflight = 0
        for future in futures:
            future.result()  # re-raises the first failure

    def fail(self, name: str, why: str) -> None:
        raise UnsafeLayerError(f"{self.what}: entry {name!r} {why}; layer rejected")

    def relative(self, name: str, original: str) -> str:
        if name.startswith("/"):
            self.fail(original, "has an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            self.fail(original, "climbs out with '..'")
        return "/".join(parts)

    def check_parents(self, rel: str, original: str) -> None:
        """No parent of `rel` may be a symlink (or file) that this tar created."""
        index = rel.find("/")
        while index != -1:
            if rel[:index] in self.non_dirs:
                self.fail(original, f"goes through the non-directory {rel[:index]!r}")
            index = rel.find("/", index + 1)

    def entry(self, member: tarfile.TarInfo) -> None:
        rel = self.relative(member.name, member.name)
        if not rel:  # the layer's root itself: only its metadata matters
            if member.isdir():
                self.dirs.insert(0, (self.root, member))
            return
        self.check_parents(rel, member.name)
        parent_rel, _, base = rel.rpartition("/")
        parent = f"{self.root}/{parent_rel}" if parent_rel else self.root
        if parent_rel and parent_rel not in self.known_dirs:
            os.makedirs(parent, exist_ok=True)
            self.known_dirs.add(parent_rel)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parent, parent_rel, base, member)
            return
        path = f"{self.root}/{rel}"
        if member.isdir():
            if rel in self.pending:
                self.flush()
            self.make_dir(path, member)
            self.non_dirs.discard(rel)
            self.known_dirs.add(rel)
            return
        if member.islnk():
            self.flush()  # the target must be complete before it gets another name
            self.hard_link(path, member)
        elif member.isreg():
            if member.size > self.INLINE_SIZE:
                self.flush()
                self.make_file(path, member, None)
            else:
                data = self.archive.extractfile(member).read() if member.size else b""
                self.submit(rel, lambda: self.make_file(path, member, data), len(data))
        elif member.issym():

            def make_symlink() -> None:
                self.replace(path, lambda: os.symlink(member.linkname, path))
                self.finish(path, member, chmod=False)

            self.submit(rel, make_symlink)
        elif member.ischr() or member.isblk() or member.isfifo():
            self.submit(rel, lambda: self.make_node(path, member))
        else:
            return  # unknown types (volume labels, ...) are skipped; sparse files are isreg()
        self.non_dirs.add(rel)
        self.known_dirs.discard(rel)

    def hard_link(self, path: str, member: tarfile.TarInfo) -> None:
        target_rel = self.relative(member.linkname, member.linkname)
        if not target_rel:
            self.fail(member.name, "is a hard link to the layer root")
        self.check_parents(target_rel, member.linkname)
        target = f"{self.root}/{target_rel}"
        if not os.path.lexists(target):
            self.fail(member.name, f"is a hard link to {member.linkname!r}, not in the layer")
        if os.path.isdir(target) and not os.path.islink(target):
            self.fail(member.name, "is a hard link to a directory")
        self.replace(path, lambda: os.link(target, path, follow_symlinks=False))

    def make_node(self, path: str, member: tarfile.TarInfo) -> None:
        if member.isfifo():
            self.replace(path, lambda: os.mkfifo(path, 0o600))
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            self.replace(path, lambda: os.mknod(path, kind | 0o600, device))
        self.finish(path, member)

    def whiteout(self, parent: str, parent_rel: str, base: str, member: tarfile.TarInfo) -> None:
        if base == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk and friends): meaningless here
        name = base[len(WHITEOUT_PREFIX) :]
        hidden = f"{parent}/{name}"

        def make_whiteout() -> None:
            self.replace(hidden, lambda: os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0)))
            os.lchown(hidden, member.uid, member.gid)

        self.submit(f"{parent_rel}/{name}" if parent_rel else name, make_whiteout)

    def replace(self, path: str, create) -> None:
        """Create `path`; an entry already there (a duplicate in the tar) is replaced."""
        try:
            create()
        except FileExistsError:
            self.remove(path)
            create()

    @staticmethod
    def remove(path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def make_dir(self, path: str, member: tarfile.TarInfo) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not (os.path.isdir(path) and not os.path.islink(path)):
                os.unlink(path)
                os.mkdir(path, 0o700)
        self.set_xattrs(path, member, fd=None)
        self.dirs.append((path, member))

    def make_file(self, path: str, member: tarfile.TarInfo, data: bytes | None) -> None:
        """`data`: the content, or None to stream it from the archive (this thread only).

        Most files belong to root and have plain permissions: created with those already,
        they skip the chown and chmod calls (a third of the system calls per file)."""
        mode = member.mode & 0o7777
        plain = mode == mode & 0o777 & ~self.umask
        same_owner = (member.uid, member.gid) == self.creator
        create_mode = mode if plain else 0o600
        try:
            fd = os.open(path, _OPEN_FLAGS, create_mode)
        except FileExistsError:
            self.remove(path)
            fd = os.open(path, _OPEN_FLAGS, create_mode)
        try:
            end = 0
            if data is not None:
                end = _write_holey(fd, data, 0)
            elif member.size:
                end = self.stream_file(fd, member)
            if end < member.size:
                os.ftruncate(fd, member.size)  # the file ends in a hole: nothing wrote there
            if not same_owner:
                os.fchown(fd, member.uid, member.gid)
            if not (plain and same_owner):
                os.fchmod(fd, mode)  # after chown, which clears setuid
            self.set_xattrs(None, member, fd=fd)
            os.utime(fd, ns=(_ns(member.mtime), _ns(member.mtime)))
        finally:
            os.close(fd)

    def stream_file(self, fd: int, member: tarfile.TarInfo) -> int:
        """Copy a big member from the archive; returns where the last write ended. A GNU or
        PAX sparse member is read region by region from its map, so its holes are never
        even produced as zeros."""
        member_file = self.archive.extractfile(member)
        assert member_file is not None
        # unbuffered: a read-ahead past a region would make the next seek go backwards, which
        # a compressed stream cannot do
        source = member_file.raw
        regions = member.sparse if member.sparse is not None else [(0, member.size)]
        end = 0
        for offset, length in regions:
            source.seek(offset)
            while length > 0:
                chunk = source.read(min(COPY_CHUNK, length))
                if not chunk:
                    raise EOFError(f"{member.name}: archive ends inside the file")
                end = max(end, _write_holey(fd, chunk, offset))
                offset += len(chunk)
                length -= len(chunk)
        return end

    def finish(self, path: str, member: tarfile.TarInfo, chmod: bool = True) -> None:
        if (member.uid, member.gid) != self.creator:  # new inodes are the creator's already
            os.lchown(path, member.uid, member.gid)
        if chmod:
            os.chmod(path, member.mode & 0o7777, follow_symlinks=False)
        self.set_xattrs(path, member, fd=None)
        os.utime(path, ns=(_ns(member.mtime), _ns(member.mtime)), follow_symlinks=False)

    def set_xattrs(self, path: str | None, member: tarfile.TarInfo, fd: int | None) -> None:
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                name, data = key[len("SCHILY.xattr.") :], value.encode("utf-8", "surrogateescape")
            elif key.startswith("LIBARCHIVE.xattr."):
                name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr.") :])
                data = base64.b64decode(value + "=" * (-len(value) % 4))
            else:
                continue
            try:
                if fd is not None:
                    os.setxattr(fd, name, data)
                else:
                    os.setxattr(path, name, data, follow_symlinks=False)
            except OSError as exc:
                raise UnsafeLayerError(
                    f"{self.what}: entry {member.name!r}: cannot set xattr {name}: {exc.strerror}"
                ) from exc


HOLE_BLOCK = 4096  # the file system's block: a run of zeros this long becomes a hole
_ZEROS = bytes(HOLE_BLOCK)


def _write_holey(fd: int, data: bytes, offset: int) -> int:
    """`pwrite` `data` at `offset`, skipping whole blocks of zeros: they stay holes. Returns
    where the last byte written ends (the caller extends the file over a final hole). Docker's
    and containerd's appliers keep files sparse too; without it a layer's sparse 8 GiB file
    would take 8 GiB of disk."""
    if _ZEROS not in data:  # the common case, decided by one C-level search
        _pwrite_all(fd, memoryview(data), offset)
        return offset + len(data)
    view = memoryview(data)
    run_start = 0  # start of the data not written yet
    position = -offset % HOLE_BLOCK  # the first block boundary of the file in this chunk
    end = offset
    while position + HOLE_BLOCK <= len(data):
        if data.startswith(_ZEROS, position):
            if run_start < position:
                _pwrite_all(fd, view[run_start:position], offset + run_start)
                end = offset + position
            run_start = position + HOLE_BLOCK
        position += HOLE_BLOCK
    if run_start < len(data):
        _pwrite_all(fd, view[run_start:], offset + run_start)
        end = offset + len(data)
    return end


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _run_all(jobs: list) -> None:
    for job in jobs:
        job()


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)
