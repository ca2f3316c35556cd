"""The image configuration: what a container of the image starts with, and its layer ids.

`ImageConfig` is the part executors need (`Env`, `Entrypoint`, `Cmd`, `WorkingDir`, `User`,
`ExposedPorts`). `diff_ids` are the digests of the *uncompressed* layers; `chain_ids` name a
layer together with everything below it (the OCI ChainID), which is how extracted layers are
shared: the same tar on top of the same parents is extracted once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from executors.images.errors import ImagePullError


@dataclass(frozen=True)
class ImageConfig:
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "Env": list(self.env),
            "Entrypoint": None if self.entrypoint is None else list(self.entrypoint),
            "Cmd": None if self.cmd is None else list(self.cmd),
            "WorkingDir": self.working_dir,
            "User": self.user,
            "ExposedPorts": {port: {} for port in self.exposed_ports},
        }


def _strings(value: object, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # some old images store a single string
        return (value,)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImagePullError(f"image config: {key} is not a list of strings")
    return tuple(value)


def image_config_from_json(document: dict) -> ImageConfig:
    """Read `config` of an image configuration blob (`container_config` is only history)."""
    section = document.get("config") or {}
    if not isinstance(section, dict):
        raise ImagePullError("image config: `config` is not an object")
    ports = section.get("ExposedPorts") or {}
    return ImageConfig(
        env=_strings(section.get("Env"), "Env") or (),
        entrypoint=_strings(section.get("Entrypoint"), "Entrypoint"),
        cmd=_strings(section.get("Cmd"), "Cmd"),
        working_dir=str(section.get("WorkingDir") or ""),
        user=str(section.get("User") or ""),
        exposed_ports=tuple(sorted(ports)) if isinstance(ports, dict) else (),
    )


def image_config_from_record(data: dict) -> ImageConfig:
    """Inverse of `ImageConfig.to_json`, for store records."""
    return image_config_from_json({"config": data})


def diff_ids(document: dict, layer_count: int) -> tuple[str, ...]:
    rootfs = document.get("rootfs") or {}
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ImagePullError("image config: rootfs.diff_ids missing")
    if len(ids) != layer_count:
        raise ImagePullError(
            f"image config: {len(ids)} diff_ids for {layer_count} layers in the manifest"
        )
    for digest in ids:
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ImagePullError(f"image config: bad diff_id {digest!r}")
    return tuple(ids)


def chain_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    chains: list[str] = []
    for diff_id in ids:
        if not chains:
            chains.append(diff_id)
        else:
            text = f"{chains[-1]} {diff_id}".encode()
            chains.append("sha256:" + hashlib.sha256(text).hexdigest())
    return tuple(chains)
