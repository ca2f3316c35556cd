"""Manifests and indexes: parse, verify, and pick the entry for this platform.

Both OCI (`application/vnd.oci.image.*`) and Docker schema2 (`...distribution.manifest.*`)
are read into the same shapes. An index or manifest list is narrowed to one manifest by
platform: the host's OS and architecture (and ARM variant) unless the caller names one;
attestation entries (BuildKit's `unknown/unknown` with `vnd.docker.reference.type`) never match.
"""

from __future__ import annotations

import hashlib
import json
import platform as host_platform
from dataclasses import dataclass

from executors.images.errors import ImagePullError

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", ""),
    "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]


def host() -> Platform:
    arch, variant = _ARCH.get(host_platform.machine().lower(), (host_platform.machine(), ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    """`linux/arm64/v8`, `linux/amd64`, `arm64` (OS defaults to linux)."""
    parts = text.strip().split("/")
    if len(parts) == 1:
        parts = ["linux", *parts]
    if len(parts) > 3 or not all(parts):
        raise ImagePullError(f"invalid platform {text!r}: expected os/arch[/variant]")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def verify_digest(data: bytes, digest: str, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256":
        raise ImagePullError(f"{what}: unsupported digest algorithm {algorithm!r}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ImagePullError(f"{what}: digest mismatch, expected {digest}, got sha256:{actual}")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_json(data: bytes, what: str) -> dict:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImagePullError(f"{what}: not valid JSON ({exc})")
    if not isinstance(document, dict):
        raise ImagePullError(f"{what}: expected a JSON object")
    return document


def media_type_of(document: dict, header_type: str) -> str:
    """The body's `mediaType` wins; OCI allows it to be absent, then the header decides."""
    declared = document.get("mediaType") or header_type
    if declared not in INDEX_TYPES | MANIFEST_TYPES:
        if "manifests" in document:
            return "application/vnd.oci.image.index.v1+json"
        if "layers" in document and "config" in document:
            return "application/vnd.oci.image.manifest.v1+json"
        raise ImagePullError(f"unsupported manifest media type {declared!r}")
    return declared


def _descriptor(entry: object, what: str) -> Descriptor:
    if not isinstance(entry, dict):
        raise ImagePullError(f"{what}: descriptor is not an object")
    digest, size = entry.get("digest"), entry.get("size")
    if not isinstance(digest, str) or ":" not in digest or not isinstance(size, int):
        raise ImagePullError(f"{what}: descriptor lacks digest or size")
    return Descriptor(str(entry.get("mediaType", "")), digest, size)


def parse_manifest(document: dict, what: str) -> Manifest:
    config = _descriptor(document.get("config"), f"{what} config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ImagePullError(f"{what}: no layers list")
    return Manifest(config, tuple(_descriptor(layer, f"{what} layer") for layer in layers))


def select_platform(document: dict, wanted: Platform, what: str) -> Descriptor:
    """The index entry for `wanted`: exact variant first, then one without a variant."""
    candidates: list[tuple[int, Descriptor]] = []
    offered: list[str] = []
    for entry in document.get("manifests") or []:
        if not isinstance(entry, dict):
            continue
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        plat = entry.get("platform") or {}
        os_name, arch = plat.get("os", ""), plat.get("architecture", "")
        if (os_name, arch) == ("unknown", "unknown"):
            continue
        variant = plat.get("variant", "")
        offered.append(str(Platform(os_name, arch, variant)))
        if os_name != wanted.os or arch != wanted.architecture:
            continue
        if variant == wanted.variant:
            rank = 0
        elif not variant or not wanted.variant:
            rank = 1
        else:
            continue
        candidates.append((rank, _descriptor(entry, what)))
    if not candidates:
        listed = ", ".join(offered) or "none"
        raise ImagePullError(f"{what}: no image for platform {wanted} (offers: {listed})")
    return min(candidates, key=lambda pair: pair[0])[1]
