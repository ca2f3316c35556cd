"""The one error a pull raises for everything the user or the outside world got wrong."""

from __future__ import annotations

from runner.errors import PyciError


class ImagePullError(PyciError):
    """An image could not be had: bad reference, registry refused, digest mismatch, bad layer.

    The message is one line naming the image; executors map it to GitLab's
    `image_pull_failure` reason.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


class UnsafeLayerError(ImagePullError):
    """A layer tries to write outside its directory, or is not a valid (compressed) tar."""
