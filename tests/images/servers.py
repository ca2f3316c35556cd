"""Real servers on loopback for the image tests: the CNCF distribution registry (Debian's
`docker-registry`), a token service implementing the documented Bearer flow, and a fault
proxy that drops connections mid-blob and redirects blobs to another origin."""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.loopback import LoopbackHTTP

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryServer:
    """One `docker-registry serve` with its storage in `root`; `auth` is the YAML `auth:`
    section (already indented) or empty."""

    def __init__(self, root: Path, auth: str = ""):
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.storage = root / "storage"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n  secret: pyci-test-secret\n"
            + (f"auth:\n{auth}" if auth else "")
        )
        self.log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "registry.log").read_text())
            try:
                httpx.get(f"{self.url}/v2/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.02)
        raise RuntimeError("registry did not start")

    def blob_file(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass


def _serve(handler_class) -> LoopbackHTTP:
    # dropped connections are the point of the fault tests: no traceback for them
    return LoopbackHTTP(handler_class, quiet_errors=True).start()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der_to_raw_ecdsa(der: bytes) -> bytes:
    """openssl writes ECDSA signatures as DER SEQUENCE{r, s}; JWS ES256 wants r || s."""
    index = 2 if der[1] < 0x80 else 3
    parts = []
    for _ in range(2):
        length = der[index + 1]
        parts.append(der[index + 2 : index + 2 + length].lstrip(b"\0").rjust(32, b"\0"))
        index += 2 + length
    return b"".join(parts)


class TokenService:
    """Docker's token flow: GET /token?service=..&scope=.. (Basic auth optional) -> a JWT
    signed with a key the registry trusts (its certificate is the `rootcertbundle`).

    Users in `users` get what they ask for; anonymous clients get `pull` on `public/*` only.
    `expired_first` makes the first token already expired (the registry must reject it)."""

    SERVICE = "pyci-test-registry"
    ISSUER = "pyci-test-issuer"

    def __init__(self, workdir: Path, users: dict[str, str]):
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2",
             "-subj", "/CN=pyci-token", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.refresh_tokens = {f"refresh-{name}": name for name in users}  # identity tokens
        self.issued: list[dict] = []  # one entry per token: {"user":..., "scope":...}
        self.expired_first = False
        self.expires_in = 300
        service = self

        class Handler(_Quiet):
            def do_GET(self):
                service.handle(self)

            do_POST = do_GET

        self.http = _serve(Handler)
        self.url = f"http://127.0.0.1:{self.http.port}/token"

    def auth_yaml(self) -> str:
        return (
            "  token:\n"
            f"    realm: {self.url}\n"
            f"    service: {self.SERVICE}\n"
            f"    issuer: {self.ISSUER}\n"
            f"    rootcertbundle: {self.cert}\n"
        )

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        with tempfile.NamedTemporaryFile() as data:
            data.write(signing_input.encode())
            data.flush()
            signature = subprocess.run(
                ["openssl", "dgst", "-sha256", "-sign", str(self.key), data.name],
                check=True,
                capture_output=True,
            ).stdout
        return f"{signing_input}.{_b64url(_der_to_raw_ecdsa(signature))}"

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(request.path).query)
        user = None
        if request.command == "POST":  # the OAuth2 form: grant_type=refresh_token
            length = int(request.headers.get("Content-Length", "0"))
            query = urllib.parse.parse_qs(request.rfile.read(length).decode())
            user = self.refresh_tokens.get(query.get("refresh_token", [""])[0])
            if query.get("grant_type") != ["refresh_token"] or user is None:
                self._reply(request, 401, {"details": "bad refresh token"})
                return
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(name) != password:
                self._reply(request, 401, {"details": "bad credentials"})
                return
            user = name
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            if user is None:
                allowed = ["pull"] if name.startswith("public/") and "pull" in actions else []
            else:
                allowed = actions.split(",")
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        expired = self.expired_first and not self.issued
        claims = {
            "iss": self.ISSUER,
            "sub": user or "",
            "aud": query.get("service", [""])[0],
            "exp": now - 3600 if expired else now + self.expires_in,
            "nbf": now - 7200 if expired else now - 10,
            "iat": now - 7200 if expired else now,
            "jti": f"t{len(self.issued)}-{now}",
            "access": access,
        }
        self.issued.append(
            {"user": user, "scope": query.get("scope", []), "method": request.command}
        )
        token = self.sign(claims)
        self._reply(request, 200, {"token": token, "expires_in": self.expires_in})

    @staticmethod
    def _reply(request, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def stop(self) -> None:
        self.http.stop()


class FaultProxy:
    """A forwarding proxy in front of a registry.

    * `drop_after`: the first GET of each blob (without Range) sends the full Content-Length
      but only this many bytes, then closes the connection;
    * `redirect_blobs`: blob GETs are answered 307 to a second listener (another origin),
      which serves the blob from the registry and records the headers it was sent.
    `requests` records (method, path, headers) of everything seen."""

    def __init__(self, upstream: str, upstream_auth: str = ""):
        self.upstream = upstream  # host:port
        self.upstream_auth = upstream_auth  # Authorization the blob origin uses upstream
        self.drop_after: int | None = None
        self.stall_after: int | None = None  # send this much of a blob, then hang
        self.released = threading.Event()
        self.stalls_expired = 0  # stalls that ran their 30 s out instead of being released
        self.redirect_blobs = False
        self.dropped: set[str] = set()
        self.requests: list[tuple[str, str, dict]] = []
        self.blob_origin_requests: list[dict] = []
        proxy = self

        class Front(_Quiet):
            def do_GET(self):
                proxy.front(self)

            do_HEAD = do_GET

        class BlobOrigin(_Quiet):
            def do_GET(self):
                proxy.blob_origin_requests.append(dict(self.headers))
                headers = {"Authorization": proxy.upstream_auth} if proxy.upstream_auth else {}
                if "Range" in self.headers:
                    headers["Range"] = self.headers["Range"]
                proxy.forward(self, "GET", self.path, headers)

        self.front_http = _serve(Front)
        self.origin_http = _serve(BlobOrigin)
        self.host = f"127.0.0.1:{self.front_http.port}"
        self.origin_url = f"http://127.0.0.1:{self.origin_http.port}"

    def front(self, request) -> None:
        path = request.path
        self.requests.append((request.command, path, dict(request.headers)))
        is_blob = "/blobs/sha256:" in path and request.command == "GET"
        if is_blob and self.redirect_blobs:
            request.send_response(307)
            request.send_header("Location", self.origin_url + path)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        digest = path.rsplit("/", 1)[-1]
        drop = (
            is_blob
            and self.drop_after is not None
            and "Range" not in request.headers
            and digest not in self.dropped
        )
        if drop:
            self.dropped.add(digest)
        stall = is_blob and self.stall_after is not None
        cut = self.stall_after if stall else self.drop_after if drop else None
        self.forward(request, request.command, path, headers, cut, stall)

    def forward(self, request, method, path, headers, cut=None, stall=False) -> None:
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        request.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        if cut is not None:
            request.send_header("Connection", "close")
        request.end_headers()
        if method == "HEAD":
            return
        request.wfile.write(body[:cut] if cut is not None else body)
        if stall:
            request.wfile.flush()
            if not self.released.wait(30):
                self.stalls_expired += 1
        if cut is not None:
            request.wfile.flush()
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_RDWR)
            request.close_connection = True

    def stop(self) -> None:
        self.released.set()
        self.front_http.stop()
        self.origin_http.stop()


@contextlib.contextmanager
def image_on_a_registry(image, repository: str, tag: str = "v1") -> Iterator[str]:
    """`image` pushed to a registry of its own on loopback, for as long as the block lasts:
    yields its reference (`127.0.0.1:<port>/<repository>:<tag>`)."""
    from tests.images.imagelib import Pusher

    root = Path(tempfile.mkdtemp(prefix="pyci-test-registry-"))
    server = RegistryServer(root)
    try:
        server.wait_ready()
        pusher = Pusher(server.url)
        try:
            pusher.push_image(repository, tag, image)
        finally:
            pusher.close()
        yield f"{server.host}/{repository}:{tag}"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
