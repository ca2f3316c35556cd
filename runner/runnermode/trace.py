"""A job's trace on its way to GitLab: collected from the build's events, sent incrementally.

`TraceBuffer` is the build's reporter: it keeps the job's log (already masked by the build's
`Masker`) as bytes, after one more pass that runner mode owes GitLab: tokens recognised by
their prefix (`glpat-`, `glrt-`, the job's own token, ...) are masked too, as gitlab-runner
does, whether or not a variable declared them. That pass works on whole lines (a token never
spans a newline), so a partial line waits for its end (or the job's).

`TraceSender` sends what is new every `interval` seconds with `PATCH /jobs/:id/trace` and a
`Content-Range`, and follows the server: a 202's `Range` says what it holds, a 416 says its
size differs (so the next patch starts from there), `X-GitLab-Trace-Update-Interval` changes
the pace, and `Job-Status: canceling|canceled` (or a 403/404: the job is no longer ours)
cancels the build; when there is nothing new, a `PUT` with `state: running` asks the same.
Network errors and 5xx are retried on the next tick; nothing is lost, since the buffer keeps
the whole trace.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable, Iterable

from runner.core.events import Event, LogChunk
from runner.gitlab.errors import GitLabError
from runner.gitlab.runner_api import RunnerAPI

DEFAULT_INTERVAL = 3.0  # gitlab-runner's default update interval
MAX_PATCH_BYTES = 1024 * 1024  # one PATCH at most (GitLab's chunks are 128 KB; it takes more)
MAX_PATCHES_PER_ROUND = 64  # a server that answers 416 forever does not hold the thread
PARTIAL_LINE_LIMIT = 64 * 1024  # a line longer than this is released unfinished
# gitlab-runner's token prefixes (helpers/trace/internal/tokensanitizer): what follows is masked
TOKEN_PREFIXES = (
    *("glpat-", "gloas-", "gldt-", "glrt-", "glrtr-", "glcbt-", "glptt-", "glft-", "glimt-"),
    *("glagent-", "glsoat-", "glffct-", "gljt-", "GR1348941"),
)
_TOKEN = re.compile(
    "(" + "|".join(re.escape(prefix) for prefix in TOKEN_PREFIXES) + r")[0-9A-Za-z_.\-]+"
)
MASK = "[MASKED]"
CANCEL_STATUSES = ("canceling", "canceled")


def mask_tokens(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secrets, and tokens recognised by their prefix, masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _TOKEN.sub(lambda match: match.group(1) + MASK, text)


class TraceBuffer:
    """The job's whole trace as bytes (implements runner.core.events.Reporter); thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._data = bytearray()
        self._partial = ""
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        if isinstance(event, LogChunk):
            self.write(event.text)

    def write(self, text: str) -> None:
        with self._lock:
            pending = self._partial + text
            cut = pending.rfind("\n") + 1
            if cut == 0 and len(pending) > PARTIAL_LINE_LIMIT:
                cut = len(pending)
            self._partial = pending[cut:]
            self._data += mask_tokens(pending[:cut], self._secrets).encode()

    def close(self) -> None:
        """The end of the trace: the last partial line is released."""
        with self._lock:
            self._data += mask_tokens(self._partial, self._secrets).encode()
            self._partial = ""

    def data(self) -> bytes:
        with self._lock:
            return bytes(self._data)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


def checksum(data: bytes) -> str:
    """What `PUT /jobs/:id` carries: `crc32:%08x` of the whole trace."""
    return f"crc32:{zlib.crc32(data) & 0xFFFFFFFF:08x}"


class TraceSender:
    """Sends the buffer's new bytes on a thread; `stop()` sends the rest and returns."""

    def __init__(
        self,
        api: RunnerAPI,
        job_id: int,
        job_token: str,
        buffer: TraceBuffer,
        on_cancel: Callable[[str], None],
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.api = api
        self.job_id = job_id
        self.job_token = job_token
        self.buffer = buffer
        self.on_cancel = on_cancel
        self.interval = interval
        self.sent = 0  # what the server holds, as far as we know
        self.patches = 0
        self.gone = False  # the server no longer takes this job's trace (403/404)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"trace-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, attempts: int = 5) -> bool:
        """Stop the thread, then send what is left; True when the server holds it all."""
        self._stopping.set()
        self._thread.join()
        for _ in range(attempts):
            if self.send_pending() and self.sent >= len(self.buffer):
                return True
        return self.sent >= len(self.buffer)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            if self.sent >= len(self.buffer):
                self.touch()
            else:
                self.send_pending()

    def touch(self) -> None:
        """Nothing new to send: tell GitLab the job still runs (gitlab-runner's touchJob, a
        `PUT` with `state: running`), and so learn whether it was canceled meanwhile."""
        try:
            answer = self.api.update_job(self.job_id, self.job_token, {"state": "running"})
        except GitLabError:
            return
        if answer.update_interval and answer.update_interval > 0:
            self.interval = answer.update_interval
        if answer.job_status in CANCEL_STATUSES:
            self.on_cancel(answer.job_status)
        elif answer.status in (403, 404):
            self.on_cancel("gone")

    def send_pending(self) -> bool:
        """One round of PATCHes of what is new; False when the server could not take it."""
        data = self.buffer.data()
        for _ in range(MAX_PATCHES_PER_ROUND):
            if self.sent >= len(data):
                return True
            chunk = data[self.sent : self.sent + MAX_PATCH_BYTES]
            try:
                answer = self.api.patch_trace(self.job_id, self.job_token, self.sent, chunk)
            except GitLabError:
                return False  # the network: the next round sends it again
            self.patches += 1
            if answer.update_interval and answer.update_interval > 0:
                self.interval = answer.update_interval
            if answer.job_status in CANCEL_STATUSES:
                self.on_cancel(answer.job_status)
            if answer.status == 202:
                end = self.sent + len(chunk)
                self.sent = answer.remote_size if answer.remote_size is not None else end
            elif answer.status == 416 and answer.remote_size is not None:
                # the server holds another size (a patch got lost, or was taken twice)
                self.sent = min(answer.remote_size, len(data))
            elif answer.status in (403, 404):
                self.gone = True
                self.on_cancel("gone")  # the job is no longer running on the server
                return False
            else:
                return False
        return self.sent >= len(data)
