"""Registry credentials: where they come from and how a challenge is answered.

Sources, first match wins (as gitlab-runner does it): GitLab's `DOCKER_AUTH_CONFIG` (a job
variable or the environment), then `$DOCKER_CONFIG/config.json` (default
`~/.docker/config.json`). Within one config, Docker's order: `credHelpers[host]`, then
`credsStore`, then the static `auths` entry. Helpers are the `docker-credential-<name>` programs
(`get` with the server on stdin, JSON on stdout).

The challenge side: a registry answers 401 with `WWW-Authenticate: Bearer realm=..,service=..,
scope=..` (token flow) or `Basic realm=..`; `parse_challenge` reads that header and
`TokenCache` keeps bearer tokens until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from executors.images.errors import ImagePullError
from executors.images.reference import DOCKER_HUB

# Docker Hub's credentials live under this legacy key in config.json
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token (`docker login` to some registries)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class CredentialStore:
    """Looks up credentials for a registry host in a list of docker-style config documents."""

    def __init__(self, configs: list[Mapping] | None = None):
        self._configs = list(configs or [])
        self._cache: dict[str, Credentials | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(
        cls,
        docker_auth_config: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CredentialStore:
        """`docker_auth_config`: the job's DOCKER_AUTH_CONFIG variable, if it has one."""
        env = os.environ if env is None else env
        configs: list[Mapping] = []
        for origin, text in (
            ("DOCKER_AUTH_CONFIG variable", docker_auth_config),
            ("DOCKER_AUTH_CONFIG", env.get("DOCKER_AUTH_CONFIG")),
        ):
            if text:
                configs.append(_parse_config(text, origin))
        config_dir = env.get("DOCKER_CONFIG") or str(Path(env.get("HOME", "~")) / ".docker")
        path = Path(config_dir).expanduser() / "config.json"
        if path.is_file():
            configs.append(_parse_config(path.read_text(encoding="utf-8"), str(path)))
        return cls(configs)

    def lookup(self, registry: str) -> Credentials | None:
        with self._lock:
            if registry not in self._cache:
                self._cache[registry] = self._find(registry)
            return self._cache[registry]

    def _find(self, registry: str) -> Credentials | None:
        for config in self._configs:
            helpers = config.get("credHelpers") or {}
            for key, helper in helpers.items():
                if _auth_key_host(key) == _canonical_host(registry):
                    return _run_helper(helper, _server_url(registry))
            store = config.get("credsStore")
            if store:
                found = _run_helper(store, _server_url(registry))
                if found:
                    return found
            for key, entry in (config.get("auths") or {}).items():
                if _auth_key_host(key) == _canonical_host(registry):
                    found = _from_auth_entry(entry, key)
                    if found:
                        return found
        return None


def _parse_config(text: str, origin: str) -> Mapping:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImagePullError(f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno})")
    if not isinstance(data, dict):
        raise ImagePullError(f"{origin}: expected a JSON object")
    return data


def _canonical_host(host: str) -> str:
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _auth_key_host(key: str) -> str:
    """`https://index.docker.io/v1/` -> `docker.io`; `registry.example:5000` stays."""
    host = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]
    return _canonical_host(host)


def _server_url(registry: str) -> str:
    return DOCKER_HUB_AUTH_KEY if _canonical_host(registry) == DOCKER_HUB else registry


def _from_auth_entry(entry: Mapping, key: str) -> Credentials | None:
    if not isinstance(entry, Mapping):
        return None
    username, password = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"]).decode()
        except (ValueError, UnicodeDecodeError):
            raise ImagePullError(f"docker config: auths[{key!r}].auth is not base64 user:pass")
        username, _, password = decoded.partition(":")
    token = entry.get("identitytoken", "")
    if not (username or token):
        return None
    return Credentials(username, password, token)


def _run_helper(helper: str, server: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run(
            [program, "get"], input=server, capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        raise ImagePullError(f"credential helper {program} not found in PATH (for {server})")
    except subprocess.TimeoutExpired:
        raise ImagePullError(f"credential helper {program} did not answer within 30 s")
    if result.returncode != 0:
        if "not found" in (result.stdout + result.stderr).lower():
            return None
        message = (result.stderr or result.stdout).strip().splitlines()[:1]
        raise ImagePullError(f"credential helper {program} failed: {' '.join(message)}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ImagePullError(f"credential helper {program} printed no JSON")
    username, secret = data.get("Username", ""), data.get("Secret", "")
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret) if username or secret else None


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic", lowercased
    params: dict[str, str]


_PARAM = re.compile(r'\s*([a-zA-Z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Read the first challenge of a `WWW-Authenticate` header (registries send one)."""
    match = re.match(r"\s*([A-Za-z]+)\s*(.*)", header or "", re.S)
    if not match:
        return None
    scheme, rest = match.group(1).lower(), match.group(2)
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        param = _PARAM.match(rest, pos)
        if not param or param.end() == pos:
            break
        value = param.group(2) if param.group(2) is not None else param.group(3)
        params[param.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = param.end()
    return Challenge(scheme, params)


@dataclass
class Token:
    value: str
    expires_at: float  # clock time after which it is not used any more


class TokenCache:
    """Bearer tokens by (realm, service, scope), dropped 10 s (at most half their life) early."""

    MARGIN = 10.0
    DEFAULT_LIFETIME = 60.0  # the token spec's default when `expires_in` is missing

    def __init__(self, clock=time.monotonic) -> None:
        self._tokens: dict[tuple[str, str, str], Token] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token and self._clock() < token.expires_at:
                return token.value
            self._tokens.pop(key, None)
            return None

    def put(self, key: tuple[str, str, str], answer: Mapping) -> str:
        value = answer.get("token") or answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise ImagePullError(f"token service {key[0]} answered without a token")
        lifetime = answer.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = self.DEFAULT_LIFETIME
        # short-lived tokens keep half their life rather than none
        expires = self._clock() + lifetime - min(self.MARGIN, lifetime / 2)
        with self._lock:
            self._tokens[key] = Token(value, expires)
        return value

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)
