"""The one error a pull raises for everything the user or the outside world got wrong."""

from __future__ import annotations

from runner.core.errors import PyciError


class ImagePullError(PyciError):
    """An image could not be had: bad reference, registry refused, digest mismatch, bad layer.

    The message is one line naming the image; executors map it to GitLab's
    `image_pull_failure` reason.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


class RegistryUnreachable(ImagePullError):
    """No connection could be made to a registry (refused, no route, name not resolved,
    connect timeout): the fix is on the user's side, so the message says where to look."""

    HINT = (
        "the registry could not be reached: pull Docker Hub images through a mirror with "
        "--registry-mirror URL or PYCI_REGISTRY_MIRROR, and check the registry's address "
        "and credentials in the docker config (DOCKER_AUTH_CONFIG, else "
        "$DOCKER_CONFIG/config.json, by default ~/.docker/config.json)"
    )


class UnsafeLayerError(ImagePullError):
    """A layer tries to write outside its directory, or is not a valid (compressed) tar."""
