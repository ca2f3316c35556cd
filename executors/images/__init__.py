"""Images: pull from OCI registries into a verified, content-addressed store (see docs/images.md).

Executors use `ImageStore`, `pull_image` and `PulledImage`; nothing here needs a Docker
engine or skopeo at run time.
"""
