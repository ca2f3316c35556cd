"""Fixtures for the image tests: real registries on loopback, seeded with images built here.

One session starts three `docker-registry` servers (plain, htpasswd Basic auth, token auth
with a `TokenService`), each on 127.0.0.1 with a free port and a temp storage dir, and stops
them at the end. Tests get a fresh, empty store (`$PYCI_HOME`) each.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from executors.images.auth import CredentialStore
from executors.images.store import ImageStore

from . import imagelib
from .imagelib import (
    Image,
    Pusher,
    build_image,
    build_index,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    make_tar,
    symlink,
)
from .servers import FaultProxy, RegistryServer, TokenService

BUSYBOX = Path("/usr/bin/busybox")
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "true")
# CAP_NET_RAW (13) permitted + effective, as `setcap cap_net_raw+ep` writes it (v2 format)
NET_RAW_CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
USERS = {"alice": "wonderland"}


@dataclass
class Registries:
    plain: RegistryServer
    basic: RegistryServer
    token: RegistryServer
    tokens: TokenService
    images: dict[str, Image] = field(default_factory=dict)  # key -> image
    digests: dict[str, str] = field(default_factory=dict)  # key -> repo digest
    refs: dict[str, str] = field(default_factory=dict)  # key -> "host/repo:v1"
    platform_images: list[Image] = field(default_factory=list)


def busybox_image() -> Image:
    """Busybox with a full PATH and an exposed port (what the image tests look at)."""
    config = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
        "WorkingDir": "/",
        "ExposedPorts": {"8080/tcp": {}},
    }
    return imagelib.busybox_image(BUSYBOX_APPLETS, config)


def layered_image() -> Image:
    """Three layers exercising everything extraction must keep or turn into overlayfs form."""
    bottom = [
        directory("etc"),
        file("etc/keep", b"kept\n"),
        file("etc/gone", b"to be whited out\n"),
        directory("opaque"),
        file("opaque/old", b"hidden by the opaque dir above\n"),
        directory("data", mode=0o750, uid=1000, gid=1000),
        file("data/owned", b"x", mode=0o640, uid=1000, gid=100, mtime=1_500_000_000),
    ]
    middle = [
        directory("usr"),
        directory("usr/bin"),
        file("usr/bin/su-like", b"#!/bin/sh\n", mode=0o4755),
        file("usr/bin/sgid", b"#!/bin/sh\n", mode=0o2755),
        directory("shared", mode=0o1777),
        file(
            "usr/bin/ping-like",
            b"\x7fELF",
            mode=0o755,
            xattrs={"security.capability": NET_RAW_CAPABILITY, "user.pyci": b"hello"},
        ),
        file("usr/bin/original", b"linked content\n"),
        hardlink("usr/bin/alias", "usr/bin/original"),
        symlink("usr/bin/relative", "original"),
        symlink("usr/bin/absolute", "/etc/keep"),
        directory("dev"),
        chardev("dev/null", 1, 3),
        fifo("dev/pipe", mode=0o600),
    ]
    top = [
        file("etc/.wh.gone", b""),
        directory("opaque"),
        file("opaque/.wh..wh..opq", b""),
        file("opaque/new", b"only me\n"),
    ]
    return build_image([make_tar(entries) for entries in (bottom, middle, top)], "gzip")


def platform_images() -> tuple[list[Image], bytes]:
    def arch_image(name: str, arch: str, variant: str = "") -> Image:
        layer = make_tar([file("arch", name.encode())])
        return build_image([layer], "gzip", arch=arch, variant=variant)

    amd64 = arch_image("amd64", "amd64")
    arm64 = arch_image("arm64", "arm64", "v8")
    armv7 = arch_image("armv7", "arm", "v7")
    armv6 = arch_image("armv6", "arm", "v6")
    attestation = build_image([make_tar([file("sbom.json", b"{}")])], "none")
    index = build_index(
        [
            (attestation, {"os": "unknown", "architecture": "unknown"},
             {"vnd.docker.reference.type": "attestation-manifest",
              "vnd.docker.reference.digest": amd64.digest}),
            (arm64, {"os": "linux", "architecture": "arm64", "variant": "v8"}, None),
            (armv6, {"os": "linux", "architecture": "arm", "variant": "v6"}, None),
            (armv7, {"os": "linux", "architecture": "arm", "variant": "v7"}, None),
            (amd64, {"os": "linux", "architecture": "amd64"}, None),
        ]
    )  # fmt: skip
    return [attestation, arm64, armv6, armv7, amd64], index


def compression_image() -> Image:
    layers = [make_tar([file("zstd-file", b"z" * 100_000)]), make_tar([file("plain-file", b"p")])]
    return build_image(layers, ["zstd", "none"])


@pytest.fixture(scope="session")
def registries():
    root = Path(tempfile.mkdtemp(prefix="pyci-registries-"))
    started = []
    try:
        htpasswd = root / "htpasswd"
        line = subprocess.run(
            ["htpasswd", "-Bbn", "alice", USERS["alice"]],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        htpasswd.write_text(line)
        tokens = TokenService(root, USERS)
        started.append(tokens)
        servers = []
        for name, auth in (
            ("plain", ""),
            ("basic", f"  htpasswd:\n    realm: pyci-test\n    path: {htpasswd}\n"),
            ("token", tokens.auth_yaml()),
        ):
            (root / name).mkdir()
            server = RegistryServer(root / name, auth)
            started.append(server)
            servers.append(server)
        for server in servers:
            server.wait_ready()
        found = Registries(*servers, tokens)
        _seed(found)
        yield found
    finally:
        for thing in reversed(started):
            thing.stop()
        shutil.rmtree(root, ignore_errors=True)


def _seed(regs: Registries) -> None:
    plain = Pusher(regs.plain.url)
    basic = Pusher(regs.basic.url, "alice", USERS["alice"])
    token = Pusher(regs.token.url, "alice", USERS["alice"])
    try:
        for key, pusher, host, repo, image in (
            ("busybox", plain, regs.plain.host, "library/busybox", busybox_image()),
            ("layered", plain, regs.plain.host, "test/layered", layered_image()),
            ("compression", plain, regs.plain.host, "test/compression", compression_image()),
            ("basic", basic, regs.basic.host, "private/secret", busybox_image()),
            ("token-public", token, regs.token.host, "public/open", compression_image()),
            ("token-private", token, regs.token.host, "private/locked", busybox_image()),
        ):
            regs.digests[key] = pusher.push_image(repo, "v1", image)
            regs.images[key] = image
            regs.refs[key] = f"{host}/{repo}:v1"
        images, index = platform_images()
        regs.digests["platforms"] = plain.push_index("test/platforms", "v1", images, index)
        regs.refs["platforms"] = f"{regs.plain.host}/test/platforms:v1"
        regs.platform_images = images
    finally:
        for pusher in (plain, basic, token):
            pusher.close()
    regs.tokens.issued.clear()


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "pyci-home")


@pytest.fixture
def anonymous() -> CredentialStore:
    """No credentials at all (never the developer's own ~/.docker/config.json)."""
    return CredentialStore([])


@pytest.fixture
def proxy(registries):
    fault = FaultProxy(registries.plain.host)
    yield fault
    fault.stop()


@pytest.fixture(autouse=True)
def _no_docker_config(monkeypatch, tmp_path):
    """Credential lookups from the environment must not see the developer's own files."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("DOCKER_AUTH_CONFIG", raising=False)
    monkeypatch.delenv("PYCI_REGISTRY_MIRROR", raising=False)
    assert os.environ["DOCKER_CONFIG"]
