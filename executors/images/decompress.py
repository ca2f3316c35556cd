"""The uncompressed stream of a layer blob, produced in a background thread.

Compression is told by magic bytes (gzip, zstd, or a plain tar), not by the media type a
manifest claims. `InflatePump` decompresses and hashes ahead of the reader, so inflating the
next megabytes overlaps with creating files; its hash is the layer's diff_id.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import threading
from typing import BinaryIO

import zstandard

from executors.images.errors import UnsafeLayerError

COPY_CHUNK = 1 << 20


class InflatePump(io.RawIOBase):
    """Decompresses and hashes in a background thread (zlib, zstd and hashlib release the
    GIL), so inflating and hashing the next megabytes overlaps with creating files. A raw
    stream of the decompressed bytes; wrap it in `io.BufferedReader` for small reads.
    `finish()` reads to the end (the hash covers padding after the tar's end blocks)."""

    def __init__(self, source: BinaryIO, depth: int = 16):
        self._source = source
        self.hasher = hashlib.sha256()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._depth = depth
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._current = memoryview(b"")
        self._thread = threading.Thread(target=self._run, name="pyci-inflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                data = self._source.read(COPY_CHUNK)
                if not data:
                    break
                self.hasher.update(data)
                with self._cond:
                    while len(self._chunks) >= self._depth and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    self._chunks.append(data)
                    self._cond.notify_all()
        except BaseException as exc:  # handed over to the reading thread
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._current:
            with self._cond:
                while not self._chunks and not self._done:
                    self._cond.wait()
                if self._chunks:
                    self._current = memoryview(self._chunks.popleft())
                    self._cond.notify_all()
                elif self._error is not None:
                    raise UnsafeLayerError(f"layer stream is corrupt: {self._error}")
                else:
                    return 0
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def finish(self) -> str:
        """Consume the rest and return the digest of everything decompressed."""
        while True:
            with self._cond:
                self._chunks.clear()
                self._cond.notify_all()
                if self._done:
                    break
                self._cond.wait(0.1)
        self._thread.join()
        if self._error is not None:
            raise UnsafeLayerError(f"layer stream is corrupt: {self._error}")
        return "sha256:" + self.hasher.hexdigest()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
        super().close()


def open_decompressed(blob: BinaryIO) -> BinaryIO:
    """gzip, zstd or plain tar, told apart by their magic bytes rather than the media type."""
    head = blob.read(4)
    blob.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if head == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    return blob
