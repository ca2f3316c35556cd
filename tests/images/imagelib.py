"""Build OCI images from scratch and push them to a registry: test data made here, by us.

Layers are tar archives written with `tarfile` from a list of entries (files, dirs, links,
devices, whiteouts, xattrs), compressed with gzip, zstd or nothing. `build_image` computes
the config (diff_ids) and manifest; `Pusher` uploads through the registry's push API
(monolithic POST + PUT), answering Basic or Bearer challenges like any client would.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field

import httpx
import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = {
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
MTIME = 1_700_000_000


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- tar entries -------------------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    return info


def file(name, data=b"", mode=0o644, uid=0, gid=0, mtime=MTIME, xattrs=None):
    info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
    info.size = len(data)
    _xattrs(info, xattrs)
    return info, data


def directory(name, mode=0o755, uid=0, gid=0, mtime=MTIME, xattrs=None):
    info = _info(name, tarfile.DIRTYPE, mode, uid, gid, mtime)
    _xattrs(info, xattrs)
    return info, None


def symlink(name, target, uid=0, gid=0, mtime=MTIME):
    info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
    info.linkname = target
    return info, None


def hardlink(name, target):
    info = _info(name, tarfile.LNKTYPE, 0o644, 0, 0, MTIME)
    info.linkname = target
    return info, None


def chardev(name, major, minor, mode=0o666):
    info = _info(name, tarfile.CHRTYPE, mode, 0, 0, MTIME)
    info.devmajor, info.devminor = major, minor
    return info, None


def fifo(name, mode=0o644):
    return _info(name, tarfile.FIFOTYPE, mode, 0, 0, MTIME), None


def _xattrs(info: tarfile.TarInfo, xattrs: dict[str, bytes] | None) -> None:
    for key, value in (xattrs or {}).items():
        # binary values survive as surrogate escapes; tarfile writes them back as raw bytes
        info.pax_headers[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")


def make_tar(entries) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def compress(tar: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(tar, compresslevel=1, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(tar)
    return tar


# ---- images --------------------------------------------------------------------------------


@dataclass
class Image:
    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes (config, layers)
    config: dict = field(default_factory=dict)
    layer_digests: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def build_image(
    layers: list[bytes],
    compression: str | list[str] = "gzip",
    config: dict | None = None,
    arch: str = "amd64",
    variant: str = "",
    flavor: str = "oci",
    diff_ids: list[str] | None = None,
) -> Image:
    """An image of uncompressed tar `layers` (bottom first)."""
    kinds = compression if isinstance(compression, list) else [compression] * len(layers)
    blobs: dict[str, bytes] = {}
    descriptors = []
    for tar, how in zip(layers, kinds, strict=True):
        data = compress(tar, how)
        blobs[digest_of(data)] = data
        descriptors.append(
            {"mediaType": LAYER_TYPES[(flavor, how)], "digest": digest_of(data), "size": len(data)}
        )
    config_doc = {
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [digest_of(t) for t in layers]},
    }
    if variant:
        config_doc["variant"] = variant
    config_bytes = json.dumps(config_doc).encode()
    blobs[digest_of(config_bytes)] = config_bytes
    media_type = OCI_MANIFEST if flavor == "oci" else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": OCI_CONFIG if flavor == "oci" else DOCKER_CONFIG,
            "digest": digest_of(config_bytes),
            "size": len(config_bytes),
        },
        "layers": descriptors,
    }
    return Image(
        json.dumps(manifest).encode(),
        media_type,
        blobs,
        config_doc,
        [d["digest"] for d in descriptors],
    )


def build_index(entries: list[tuple[Image, dict, dict | None]], flavor: str = "oci") -> bytes:
    """`entries`: (image, platform, annotations)."""
    media_type = OCI_INDEX if flavor == "oci" else DOCKER_LIST
    manifests = []
    for image, plat, notes in entries:
        entry = {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": len(image.manifest),
            "platform": plat,
        }
        if notes:
            entry["annotations"] = notes
        manifests.append(entry)
    return json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    ).encode()


# ---- pushing ------------------------------------------------------------------------------


class Pusher:
    """Uploads through the registry API, the way `docker push` does, minus the chunking."""

    def __init__(self, base_url: str, username: str = "", password: str = ""):
        self.base = base_url.rstrip("/")
        self.client = httpx.Client(timeout=30)
        self.basic = (username, password) if username else None
        self.header: dict[str, str] = {}

    def close(self) -> None:
        self.client.close()

    def _send(self, method: str, url: str, content=None, headers=None) -> httpx.Response:
        def send():
            merged = {**self.header, **(headers or {})}
            return self.client.request(method, url, headers=merged, content=content)

        response = send()
        if response.status_code == 401:
            self._answer(response.headers["www-authenticate"])
            response = send()
        response.raise_for_status()
        return response

    def _answer(self, challenge: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            self.header = {"Authorization": httpx.BasicAuth(*self.basic)._auth_header}
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        query = {"service": params["service"], "scope": params.get("scope", "")}
        answer = self.client.get(params["realm"], params=query, auth=self.basic).json()
        self.header = {"Authorization": f"Bearer {answer['token']}"}

    def push_blob(self, repo: str, data: bytes) -> None:
        digest = digest_of(data)
        if self.client.head(
            f"{self.base}/v2/{repo}/blobs/{digest}", headers=self.header
        ).is_success:
            return
        start = self._send("POST", f"{self.base}/v2/{repo}/blobs/uploads/")
        location = start.headers["location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        self._send(
            "PUT",
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def push_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> None:
        self._send(
            "PUT",
            f"{self.base}/v2/{repo}/manifests/{ref}",
            content=data,
            headers={"Content-Type": media_type},
        )

    def push_image(self, repo: str, tag: str, image: Image) -> str:
        for data in image.blobs.values():
            self.push_blob(repo, data)
        self.push_manifest(repo, tag, image.manifest, image.media_type)
        return image.digest

    def push_index(self, repo: str, tag: str, images: list[Image], index: bytes, flavor="oci"):
        for image in images:
            self.push_image(repo, image.digest, image)
        self.push_manifest(repo, tag, index, OCI_INDEX if flavor == "oci" else DOCKER_LIST)
        return digest_of(index)


BUSYBOX = "/usr/bin/busybox"  # Debian's busybox-static


def busybox_image(applets: tuple[str, ...], config: dict | None = None) -> Image:
    """A one-layer image of Debian's static busybox with `applets` linked in /bin, a root
    user and a world-writable /tmp; `config` is the image config (default: PATH=/bin, sh)."""
    with open(BUSYBOX, "rb") as binary:
        busybox = binary.read()
    entries = [directory("bin"), directory("etc"), directory("tmp", mode=0o1777)]
    entries.append(file("bin/busybox", busybox, mode=0o755))
    entries += [symlink(f"bin/{name}", "busybox") for name in applets]
    entries.append(file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"))
    config = config or {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"}
    return build_image([make_tar(entries)], "gzip", config=config, flavor="docker")
