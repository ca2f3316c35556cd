"""The outside world misbehaving: dropped connections, corrupt blobs, lying configs,
redirects to other hosts, hostile layers. Each must end in a good image or a clean error
that leaves nothing half-visible in the store."""

import base64
import os
from pathlib import Path

import pytest

from executors.images.auth import CredentialStore
from executors.images.errors import ImagePullError
from executors.images.pull import pull_image

from .conftest import USERS
from .imagelib import Pusher, build_image, digest_of, file, make_tar, symlink
from .servers import FaultProxy

pytestmark = [pytest.mark.registry, pytest.mark.root]


def store_is_empty_of_images(store) -> None:
    """No image and no reference; any layer there is complete (an honest one that was
    verified before the bad one failed) and waits for prune; nothing left in tmp/."""
    assert store.records() == []
    assert store.references() == {}
    for entry in os.listdir(store.layers) if store.layers.exists() else []:
        assert (store.layers / entry / "layer.json").is_file()
    assert not store.tmp.exists() or os.listdir(store.tmp) == []


def push(registries, repo: str, image) -> str:
    pusher = Pusher(registries.plain.url)
    try:
        pusher.push_image(repo, "v1", image)
    finally:
        pusher.close()
    return f"{registries.plain.host}/{repo}:v1"


def test_dropped_connection_mid_blob_resumes_with_range(registries, store, anonymous, proxy):
    proxy.drop_after = 100_000  # of the ~1 MB busybox layer
    image = pull_image(store, f"{proxy.host}/library/busybox:v1", auth=anonymous)
    assert (image.layer_dirs[0] / "bin/busybox").read_bytes() == Path(
        "/usr/bin/busybox"
    ).read_bytes()
    layer_digest = registries.images["busybox"].layer_digests[0]
    blob_gets = [(path, h) for m, path, h in proxy.requests if path.endswith(layer_digest)]
    assert len(blob_gets) == 2
    assert "Range" not in blob_gets[0][1]
    assert blob_gets[1][1]["Range"] == "bytes=100000-"


def test_corrupted_blob_is_rejected_and_not_cached(registries, store, anonymous):
    image = build_image([make_tar([file("data", os.urandom(50_000))])])
    ref = push(registries, "test/corrupt", image)
    blob = registries.plain.blob_file(image.layer_digests[0])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    blob.write_bytes(bytes(data))
    with pytest.raises(ImagePullError, match="digest mismatch") as caught:
        pull_image(store, ref, auth=anonymous)
    assert image.layer_digests[0] in str(caught.value)
    assert not store.has_blob(image.layer_digests[0])
    store_is_empty_of_images(store)


def test_config_lying_about_diff_ids_is_rejected(registries, store, anonymous):
    honest = make_tar([file("a", b"a")])
    image = build_image([honest], diff_ids=[digest_of(b"something else")])
    ref = push(registries, "test/lying", image)
    with pytest.raises(ImagePullError, match="diff_id mismatch"):
        pull_image(store, ref, auth=anonymous)
    store_is_empty_of_images(store)


def test_hostile_layer_from_a_registry_writes_nothing_outside(
    registries, store, anonymous, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = make_tar([symlink("escape", str(outside)), file("escape/pwned", b"evil")])
    ref = push(registries, "test/hostile", build_image([make_tar([file("ok", b"1")]), hostile]))
    with pytest.raises(ImagePullError, match="goes through the non-directory 'escape'"):
        pull_image(store, ref, auth=anonymous)
    assert os.listdir(outside) == []
    store_is_empty_of_images(store)


def test_redirects_are_followed_without_credentials_for_the_other_host(registries, store):
    auth_header = "Basic " + base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    proxy = FaultProxy(registries.basic.host, upstream_auth=auth_header)
    try:
        proxy.redirect_blobs = True
        creds = CredentialStore(
            [{"auths": {proxy.host: {"username": "alice", "password": USERS["alice"]}}}]
        )
        image = pull_image(store, f"{proxy.host}/private/secret:v1", auth=creds)
        assert (image.layer_dirs[0] / "bin/busybox").is_file()
        # the registry itself got the credentials...
        assert any("Authorization" in h for _, path, h in proxy.requests if "/manifests/" in path)
        # ...the other origin got the blobs requests, and never the credentials
        assert len(proxy.blob_origin_requests) == 2  # config and layer
        assert all("Authorization" not in h for h in proxy.blob_origin_requests)
    finally:
        proxy.stop()


def test_unreachable_registry_is_one_line_error(store, anonymous):
    with pytest.raises(ImagePullError) as caught:
        pull_image(store, "127.0.0.1:9/x/y:z", auth=anonymous)
    assert "127.0.0.1:9" in str(caught.value) and "\n" not in str(caught.value)


def test_layer_rejected_mid_download_does_not_wait_for_the_rest(
    registries, store, anonymous, proxy
):
    """The hostile entry comes first, the connection then stalls: the pull fails at once
    instead of waiting for bytes that it will never use."""
    hostile = make_tar([file("../escaped", b"evil"), file("filler", os.urandom(600_000))])
    push(registries, "test/hostile-big", build_image([hostile], "none"))
    proxy.stall_after = 100_000
    with pytest.raises(ImagePullError, match="climbs out"):
        pull_image(store, f"{proxy.host}/test/hostile-big:v1", auth=anonymous)
    assert proxy.stalls_expired == 0  # it failed while the connection still stalled
    proxy.released.set()
