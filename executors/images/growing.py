"""A blob being downloaded, readable while it grows: extraction starts with the first bytes.

The downloading thread writes the blob's temp file and calls `grew(n)` after each flushed
chunk; the extracting thread reads it through its own descriptor with `pread`, waiting when it
catches up. When a download restarts from zero (the server ignored `Range`) the same bytes come
again, so the reader just waits until they are past its position; whether they really were the
same is settled by the blob's digest, checked before anything becomes visible.
"""

from __future__ import annotations

import io
import os
import threading


class DownloadAborted(Exception):
    """Raised inside the download when the reader gave up (the layer was rejected)."""


class GrowingBlob(io.RawIOBase):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._fd: int | None = None
        self._written = 0
        self._finished = False
        self._error: BaseException | None = None
        self._aborted = False
        self._pos = 0

    # ---- writer side (the download thread) ------------------------------------------------

    def attach(self, fd: int) -> None:
        """The temp file's descriptor; a duplicate survives the writer closing and renaming."""
        with self._cond:
            if not self.closed:
                self._fd = os.dup(fd)
            self._cond.notify_all()

    def grew(self, count: int) -> None:
        with self._cond:
            if self._aborted:
                raise DownloadAborted()
            self._written += count
            self._cond.notify_all()

    def finished(self, error: BaseException | None = None, path: str | None = None) -> None:
        """The writer is done: complete (`path` when the blob was already there) or failed."""
        with self._cond:
            if path is not None and self._fd is None and not self.closed:
                self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                self._written = os.fstat(self._fd).st_size
            self._finished = True
            self._error = error
            self._cond.notify_all()

    # ---- reader side (the extraction) ---------------------------------------------------

    @property
    def received(self) -> int:
        """Bytes the writer has reported so far."""
        with self._cond:
            return self._written

    @property
    def error(self) -> BaseException | None:
        with self._cond:
            return self._error

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks")
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        with self._cond:
            while self._pos >= self._written and not self._finished and not self._aborted:
                self._cond.wait()
            if self._aborted:
                raise OSError("extraction stopped")
            if self._error is not None:
                raise OSError(f"download failed: {self._error}")
            available = self._written - self._pos
            if available <= 0:
                return 0
            fd = self._fd
        assert fd is not None
        data = os.pread(fd, min(len(buffer), available), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        super().close()
