"""The registry API over httpx: manifests and blobs, with auth, retries, resume and counting.

One `RegistryClient` talks to one endpoint (a registry, or a Docker Hub mirror). It answers a
401 challenge by itself (Bearer token flow or Basic), then sends the same authorization up
front on every later request, so a pull costs one round trip per object. Transport failures
and 5xx/429 answers are retried with backoff; a blob download that breaks off resumes with
`Range` from the last byte written. Redirects are followed by httpx, which drops the
`Authorization` header when the redirect leaves the origin (blob storage on another host must
not see the registry's credentials).

Every HTTP request, token requests included, goes through one httpx `Client` whose request
hook counts it: `RequestCounter.count` is how tests and `pyci image pull` show that a cached
image cost nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import httpx

from executors.images.auth import Credentials, CredentialStore, TokenCache, parse_challenge
from executors.images.errors import ImagePullError, RegistryUnreachable
from executors.images.reference import is_loopback

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
RETRIES = 4  # attempts after the first, for one request or one blob
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class RequestCounter:
    """Counts HTTP requests (each redirect hop and token fetch is one)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        with self._lock:
            self.count += 1


_SSL_CONTEXT = None
_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16)


def _ssl_context():
    """Loading the CA bundle costs ~0.1 s: once per process, and only if HTTPS is used."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = httpx.create_ssl_context()
    return _SSL_CONTEXT


class _LazyHTTPS(httpx.BaseTransport):
    """An HTTPS transport made on first use, so a pull from a plain-HTTP loopback registry
    never pays for the CA bundle."""

    def __init__(self) -> None:
        self._transport: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self._transport is None:
                self._transport = httpx.HTTPTransport(verify=_ssl_context(), limits=_LIMITS)
        return self._transport.handle_request(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def new_http_client(counter: RequestCounter, timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(
        mounts={
            # plain HTTP never does TLS: no CA bundle to load (redirects to https:// go to
            # the verifying transport below)
            "http://": httpx.HTTPTransport(verify=False, limits=_LIMITS),
            "https://": _LazyHTTPS(),
        },
        follow_redirects=True,
        timeout=httpx.Timeout(timeout, connect=10.0),
        event_hooks={"request": [counter]},
        # blobs are hashed as they arrive: no transfer encoding may change their bytes
        headers={"User-Agent": "pyci", "Accept-Encoding": "identity"},
        trust_env=False,  # a registry on loopback must never go through $HTTP_PROXY
    )


# hosts found to speak plain HTTP, so later pulls in this process skip the TLS attempt
_PLAIN_HTTP_HOSTS: set[str] = set()


@dataclass(frozen=True)
class Endpoint:
    """Where the registry API is: `host` (with port) and whether plain HTTP is allowed."""

    host: str
    allow_http: bool = False
    scheme: str | None = None  # forced when the mirror URL names one


class RegistryClient:
    def __init__(
        self,
        endpoint: Endpoint,
        repository: str,
        http: httpx.Client,
        credentials: CredentialStore,
        tokens: TokenCache,
        credentials_host: str | None = None,
    ):
        self.endpoint = endpoint
        self.repository = repository
        self._http = http
        self._credentials = credentials
        self._credentials_host = credentials_host or endpoint.host
        self._tokens = tokens
        self._challenge = None
        self._lock = threading.Lock()

    # ---- public operations -------------------------------------------------------------

    def get_manifest(self, reference: str) -> tuple[bytes, str, str | None]:
        """(bytes, media type, Docker-Content-Digest header) of a manifest or index."""
        response = self._request(
            "GET",
            f"/v2/{self.repository}/manifests/{reference}",
            {"Accept": ", ".join(MANIFEST_TYPES)},
            what=f"manifest {reference}",
        )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return response.content, media_type, response.headers.get("docker-content-digest")

    def get_blob_bytes(self, digest: str) -> bytes:
        response = self._request("GET", f"/v2/{self.repository}/blobs/{digest}", {}, digest)
        return response.content

    def download_blob(
        self,
        digest: str,
        size: int | None,
        out: BinaryIO,
        on_bytes: Callable[[int], None] = lambda n: None,
    ) -> None:
        """Write blob `digest` to `out`, verified; resume after a drop.

        `out` may already hold the start of the blob (a download a killed pull left): it is
        hashed, reported through `on_bytes`, and the download asks for the rest with `Range`."""
        algorithm, _, expected = digest.partition(":")
        if algorithm != "sha256":
            raise ImagePullError(f"blob {digest}: unsupported digest algorithm {algorithm!r}")
        hasher, written, failures = hashlib.sha256(), 0, 0
        kept = out.seek(0, io.SEEK_END)
        if size is not None and kept > size:
            out.seek(0)
            out.truncate()
        elif kept:
            out.seek(0)
            while chunk := out.read(1 << 20):
                hasher.update(chunk)
            written = kept
            on_bytes(kept)
        path = f"/v2/{self.repository}/blobs/{digest}"
        while size is None or written < size:
            headers = {"Range": f"bytes={written}-"} if written else {}
            try:
                with contextlib.closing(self._open_stream(path, headers, digest)) as response:
                    if written and response.status_code != 206:
                        # the server ignored Range: start over
                        out.seek(0)
                        out.truncate()
                        on_bytes(-written)
                        hasher, written = hashlib.sha256(), 0
                    # no chunk size: httpx would drop a buffered partial tail on a failure
                    for chunk in response.iter_raw():
                        out.write(chunk)
                        hasher.update(chunk)
                        written += len(chunk)
                        on_bytes(len(chunk))
                        if size is not None and written > size:
                            raise ImagePullError(f"blob {digest}: larger than its {size} bytes")
                if size is None or written >= size:
                    break
                raise httpx.RemoteProtocolError("body ended early")
            except httpx.TransportError as exc:
                failures += 1
                if failures > RETRIES:
                    raise ImagePullError(
                        f"blob {digest}: download failed after {failures} attempts: {exc}"
                    ) from exc
                time.sleep(0.1 * 2**failures)
        out.flush()
        if hasher.hexdigest() != expected:
            raise ImagePullError(
                f"blob {digest}: digest mismatch (got sha256:{hasher.hexdigest()})"
            )

    # ---- transport ------------------------------------------------------------------------

    def _base_url(self, scheme: str) -> str:
        return f"{scheme}://{self.endpoint.host}"

    def _schemes(self) -> list[str]:
        if self.endpoint.scheme:
            return [self.endpoint.scheme]
        if self.endpoint.allow_http:
            if self.endpoint.host in _PLAIN_HTTP_HOSTS:
                return ["http"]
            if is_loopback(self.endpoint.host):
                # nothing on the wire leaves the machine: ask plain HTTP first, it is the
                # common case for a local registry and saves a failed TLS handshake
                return ["http", "https"]
            return ["https", "http"]
        return ["https"]

    def _send_once(
        self, method: str, path: str, headers: dict[str, str], stream: bool
    ) -> httpx.Response:
        """One request, trying HTTPS first and plain HTTP where allowed (as Docker does)."""
        schemes = self._schemes()
        for index, scheme in enumerate(schemes):
            request = self._http.build_request(
                method, self._base_url(scheme) + path, headers={**headers, **self._auth()}
            )
            try:
                response = self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                # TLS to a plain server fails to connect; plain HTTP to a TLS server gets
                # a protocol error: either way, the other scheme is next
                if index + 1 < len(schemes):
                    continue
                raise
            if scheme == "http":
                _PLAIN_HTTP_HOSTS.add(self.endpoint.host)
            return response
        raise AssertionError("unreachable")

    def _send_authenticated(
        self, method: str, path: str, headers: dict[str, str], stream: bool
    ) -> httpx.Response:
        response = self._send_once(method, path, headers, stream)
        # answer a challenge; a second 401 for a bearer token (expired or revoked before its
        # announced expiry) gets one fresh token, Basic credentials are not tried twice
        for attempt in range(2):
            if response.status_code != 401:
                return response
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None:
                return response
            if attempt and challenge.scheme != "bearer":
                return response
            response.close()
            self._challenge = challenge
            if challenge.scheme == "bearer":
                self._tokens.forget(self._token_key())
            self._auth()  # fetch a token now, so its errors are reported as such
            response = self._send_once(method, path, headers, stream)
        return response

    def _request(self, method: str, path: str, headers: dict[str, str], what: str):
        for attempt in range(RETRIES + 1):
            try:
                response = self._send_authenticated(method, path, headers, stream=False)
            except httpx.TransportError as exc:
                # a refused connection is retried once; a reset or timeout mid-way, more
                refused = isinstance(exc, httpx.ConnectError)
                if attempt == RETRIES or (refused and attempt >= 1):
                    error = RegistryUnreachable if _no_connection(exc) else ImagePullError
                    raise error(
                        f"{self.endpoint.host}: {what}: {type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(0.1 * 2**attempt)
                continue
            if response.status_code in _RETRY_STATUS and attempt < RETRIES:
                time.sleep(0.1 * 2**attempt)
                continue
            self._raise_for_status(response, what)
            return response
        raise AssertionError("unreachable")

    def _open_stream(self, path: str, headers: dict[str, str], what: str):
        response = self._send_authenticated("GET", path, headers, stream=True)
        if response.status_code in _RETRY_STATUS:
            response.close()
            raise httpx.RemoteProtocolError(f"server answered {response.status_code}")
        if response.status_code >= 400:
            response.read()
            response.close()
            self._raise_for_status(response, what)
        return response

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            return
        detail = ""
        try:
            errors = response.json().get("errors") or []
            if errors:
                detail = f": {errors[0].get('code', '')} {errors[0].get('message', '')}".rstrip()
        except (ValueError, AttributeError):
            pass
        hint = {401: " (authentication required or credentials refused)", 404: " (not found)"}
        raise ImagePullError(
            f"{self.endpoint.host}/{self.repository}: {what}: HTTP {response.status_code}"
            f"{hint.get(response.status_code, '')}{detail}"
        )

    # ---- authorization ----------------------------------------------------------------

    def _creds(self) -> Credentials | None:
        return self._credentials.lookup(self._credentials_host)

    def _token_key(self) -> tuple[str, str, str]:
        params = self._challenge.params if self._challenge else {}
        scope = params.get("scope") or f"repository:{self.repository}:pull"
        return params.get("realm", ""), params.get("service", ""), scope

    def _auth(self) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            creds = self._creds()
            if not creds:
                raise ImagePullError(
                    f"{self.endpoint.host}: Basic authentication required and no credentials "
                    "found (docker config or DOCKER_AUTH_CONFIG)"
                )
            return {"Authorization": creds.basic_header()}
        if challenge.scheme != "bearer":
            raise ImagePullError(f"{self.endpoint.host}: unsupported auth {challenge.scheme}")
        key = self._token_key()
        with self._lock:
            token = self._tokens.get(key) or self._fetch_token(key)
        return {"Authorization": f"Bearer {token}"}

    def _fetch_token(self, key: tuple[str, str, str]) -> str:
        realm, service, scope = key
        if not realm.startswith(("https://", "http://")):
            raise ImagePullError(f"{self.endpoint.host}: Bearer challenge without a realm URL")
        creds = self._creds()
        params = {"scope": scope}
        if service:
            params["service"] = service
        try:
            if creds and creds.identity_token:
                form = {
                    **params,
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "pyci",
                }
                response = self._http.post(realm, data=form)
            else:
                headers = {"Authorization": creds.basic_header()} if creds else {}
                response = self._http.get(realm, params=params, headers=headers)
        except httpx.TransportError as exc:
            error = RegistryUnreachable if _no_connection(exc) else ImagePullError
            raise error(f"token service {realm}: {exc}") from exc
        if response.status_code in (401, 403):
            raise ImagePullError(
                f"token service {realm}: HTTP {response.status_code}, credentials refused "
                f"for {scope}"
            )
        if response.status_code >= 400:
            raise ImagePullError(f"token service {realm}: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise ImagePullError(f"token service {realm}: answer is not JSON")
        return self._tokens.put(key, answer)


def _no_connection(exc: httpx.TransportError) -> bool:
    """Whether `exc` means no connection was made at all (as opposed to one that broke)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
