"""An HTTP server on 127.0.0.1, at a free port, serving from a thread of its own: what every
test double (the fake GitLab, the git server, object storage, the registry's front) runs on."""

from __future__ import annotations

import http.server
import threading


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    quiet_errors = False

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        if not self.quiet_errors:
            super().handle_error(request, client_address)


class LoopbackHTTP:
    """`with LoopbackHTTP(Handler) as http:` serves on `http.port` until the block ends (or
    between `start()` and `stop()`). `quiet_errors`: a client that hangs up mid-answer is the
    point of some tests, not a traceback on stderr."""

    def __init__(
        self, handler: type[http.server.BaseHTTPRequestHandler], quiet_errors: bool = False
    ) -> None:
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.quiet_errors = quiet_errors
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LoopbackHTTP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackHTTP:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
