"""Image references with Docker's defaults.

`alpine` means `docker.io/library/alpine:latest`; the first path component is a registry only
when it looks like a host (has a `.` or a `:`, or is `localhost`), exactly as the Docker CLI
decides. A reference may carry a tag, a digest or both (`name:tag@sha256:...`); with both, the
digest is what gets pulled and the tag is only a label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from executors.images.errors import ImagePullError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference: `registry/repository[:tag][@digest]`."""

    registry: str  # as written by the user after defaults: docker.io, localhost:5000, ...
    repository: str  # library/alpine
    tag: str | None  # None only when a digest is given without a tag
    digest: str | None  # sha256:<hex> when pinned

    @property
    def name(self) -> str:
        """`registry/repository`, the key under which credentials and records live."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def manifest_ref(self) -> str:
        """What to ask `/v2/<repo>/manifests/<...>` for: the digest wins over the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)


def parse_reference(text: str) -> Reference:
    """Parse `text` with Docker's defaults; a malformed reference is an `ImagePullError`."""
    original = text
    if not text or text != text.strip():
        raise ImagePullError(f"invalid image reference {original!r}: empty or has spaces")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise ImagePullError(f"invalid image reference {original!r}: bad digest {digest!r}")
        algorithm, _, hexpart = digest.partition(":")
        if algorithm == "sha256" and not re.fullmatch(r"[a-f0-9]{64}", hexpart):
            raise ImagePullError(
                f"invalid image reference {original!r}: sha256 digest needs 64 lowercase hex digits"
            )
    tag = None
    # a `:` after the last `/` starts the tag; one before it belongs to a host:port
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ImagePullError(f"invalid image reference {original!r}: bad tag {tag!r}")
    registry, path = _split_registry(rest)
    if not _HOST.fullmatch(registry):
        raise ImagePullError(f"invalid image reference {original!r}: bad registry {registry!r}")
    if not path:
        raise ImagePullError(f"invalid image reference {original!r}: no repository name")
    if path != path.lower():
        raise ImagePullError(
            f"invalid image reference {original!r}: repository name must be lowercase"
        )
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise ImagePullError(
                f"invalid image reference {original!r}: bad path component {component!r}"
            )
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(f"{registry}/{path}") > _MAX_NAME:
        raise ImagePullError(f"invalid image reference {original!r}: name longer than 255")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


def _split_registry(rest: str) -> tuple[str, str]:
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if first in ("index.docker.io", "registry-1.docker.io"):
            first = DOCKER_HUB
        return first, remainder
    return DOCKER_HUB, rest


def normalize(text: str) -> str:
    """The canonical spelling of a reference (`alpine` -> `docker.io/library/alpine:latest`)."""
    return str(parse_reference(text))


def is_loopback(host: str) -> bool:
    """Docker lets loopback registries speak plain HTTP; so do we. `host` may carry a port."""
    if host.startswith("["):
        hostname = host[1 : host.find("]")]
    elif host.count(":") == 1:
        hostname = host.split(":", 1)[0]
    else:
        hostname = host
    return hostname == "localhost" or hostname.startswith("127.") or hostname == "::1"
