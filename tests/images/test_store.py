"""The store shared by processes: concurrent pulls, interrupted pulls, rm, prune, and the
lowerdir list for images with more layers than one mount option page holds."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from executors.images.errors import ImagePullError
from executors.images.lowerdirs import absolute_lowerdirs, lowerdir_option
from executors.images.pull import pull_image
from executors.images.store import ImageStore

from .imagelib import Pusher, build_image, file, make_tar

pytestmark = [pytest.mark.registry, pytest.mark.root]
REPO_ROOT = Path(__file__).resolve().parents[2]

PULL_SCRIPT = """
import json, sys
from executors.images.auth import CredentialStore
from executors.images.pull import pull_image
from executors.images.store import ImageStore
image = pull_image(ImageStore(), sys.argv[1], auth=CredentialStore([]))
print(json.dumps({"digest": image.digest, "layers": [str(d) for d in image.layer_dirs]}))
"""


def start_pull(home: Path, reference: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PULL_SCRIPT, reference],
        cwd=REPO_ROOT,
        env={**os.environ, "PYCI_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_pulling_the_same_image_both_succeed(registries, store):
    ref = registries.refs["layered"]
    pulls = [start_pull(store.home, ref) for _ in range(3)]
    results = []
    for process in pulls:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert all(result == results[0] for result in results)
    image = store.get(ref)
    assert image is not None and [str(d) for d in image.layer_dirs] == results[0]["layers"]
    assert len(os.listdir(store.layers)) == 3
    assert len(os.listdir(store.blobs)) == 4  # three layers and the config
    assert os.listdir(store.tmp) == []


def kill_pull_mid_blob(store, proxy, ref: str, layer: str, at: int) -> int:
    """Start a pull in another process, `kill -9` it once `at` bytes of `layer` are on disk
    (the proxy stalls there); returns the size of the partial blob it left."""
    proxy.stall_after = at
    process = start_pull(store.home, ref)
    partial = store.partial_blob(layer)
    deadline = time.monotonic() + 20  # a watchdog: the proxy has stalled long before
    while time.monotonic() < deadline and process.poll() is None:
        if partial.is_file() and partial.stat().st_size >= at:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    proxy.stall_after = None
    proxy.released.set()
    return partial.stat().st_size


def test_killed_pull_leaves_nothing_visible_and_the_next_pull_resumes(registries, store, proxy):
    ref = f"{proxy.host}/library/busybox:v1"
    layer = registries.images["busybox"].layer_digests[0]
    kept = kill_pull_mid_blob(store, proxy, ref, layer, 200_000)
    assert kept == 200_000
    assert store.get(ref) is None
    assert store.records() == [] and store.references() == {}
    assert not store.has_blob(layer)  # (the small config blob was complete: it may stay)
    # the dead process's lock went with it: a new pull completes, from where it stopped
    proxy.requests.clear()
    image = pull_image(store, ref, auth=None)
    assert (image.layer_dirs[0] / "bin/busybox").read_bytes() == Path(
        "/usr/bin/busybox"
    ).read_bytes()
    blob_gets = [headers for _, path, headers in proxy.requests if path.endswith(layer)]
    assert [headers.get("Range") for headers in blob_gets] == ["bytes=200000-"]
    assert not store.partial_blob(layer).exists()  # it became the blob


def test_prune_counts_what_a_killed_pull_left(registries, store, proxy):
    ref = f"{proxy.host}/library/busybox:v1"
    layer = registries.images["busybox"].layer_digests[0]
    kill_pull_mid_blob(store, proxy, ref, layer, 300_000)
    debris = {entry: _allocated(store.tmp / entry) for entry in os.listdir(store.tmp)}
    assert sum(debris.values()) >= 300_000  # the partial blob, and the layer being extracted
    result = store.prune()
    assert os.listdir(store.tmp) == []
    assert result.temp == len(debris)
    assert result.bytes_freed >= sum(debris.values())


def _allocated(path: Path) -> int:
    total = os.lstat(path).st_blocks * 512
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def test_interrupt_inside_a_pull_cleans_its_temp_files(registries, store, anonymous):
    class Interrupting:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

        def layer_bytes(self, digest, count):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull_image(store, registries.refs["busybox"], auth=anonymous, progress=Interrupting())
    assert store.get(registries.refs["busybox"]) is None
    assert os.listdir(store.tmp) == []
    assert not store.blobs.exists() or len(os.listdir(store.blobs)) == 1  # the config only


def test_rm_and_prune_keep_what_other_images_share(registries, store, anonymous):
    busybox = pull_image(store, registries.refs["busybox"], auth=anonymous)
    secret = pull_image(store, registries.refs["basic"], auth=_alice(registries))
    assert busybox.chain_ids == secret.chain_ids  # same layer: stored once
    layered = pull_image(store, registries.refs["layered"], auth=anonymous)
    assert store.prune().blobs == 0
    assert store.remove(registries.refs["layered"]) == sorted(
        [
            registries.refs["layered"],
            f"{registries.refs['layered'].rsplit(':', 1)[0]}@{layered.digest}",
        ]
    )
    assert store.get(registries.refs["layered"]) is None
    result = store.prune()
    assert (result.blobs, result.layers) == (4, 3) and result.bytes_freed > 0
    assert store.get(registries.refs["busybox"]) == busybox
    store.remove(registries.refs["busybox"])
    assert store.prune().blobs == 0  # the secret image still uses the busybox layer
    assert store.get(registries.refs["basic"]) == secret
    with pytest.raises(ImagePullError, match="not in the store"):
        store.remove(registries.refs["busybox"])


def test_many_layers_get_short_lowerdir_paths_that_mount(registries, store, anonymous, tmp_path):
    layers = [make_tar([file(f"layer-{i:02}", str(i).encode())]) for i in range(60)]
    pusher = Pusher(registries.plain.url)
    try:
        pusher.push_image("test/many", "v1", build_image(layers))
    finally:
        pusher.close()
    deep_store = ImageStore(tmp_path / ("very-long-directory-name-" * 2) / "pyci")
    image = pull_image(deep_store, f"{registries.plain.host}/test/many:v1", auth=anonymous)
    assert len(":".join(absolute_lowerdirs(image))) > 4096
    lower = lowerdir_option(deep_store, image)
    assert lower.cwd == deep_store.home and len(lower.option()) < 4096
    assert lower.dirs[0].startswith("l/")  # top first
    target = tmp_path / "merged"
    target.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", lower.option(), str(target)],
        cwd=lower.cwd,
        capture_output=True,
        text=True,
    )
    assert mount.returncode == 0, mount.stderr
    try:
        assert sorted(os.listdir(target)) == [f"layer-{i:02}" for i in range(60)]
    finally:
        subprocess.run(["umount", str(target)], check=True)
    small = pull_image(store, registries.refs["busybox"], auth=anonymous)
    assert lowerdir_option(store, small).cwd is None  # short enough: absolute paths


def _alice(registries):
    from .test_pull import alice_for

    return alice_for(registries.basic.host)


def test_a_partial_config_blob_is_replaced_not_appended_to(registries, store, anonymous):
    """What a killed pull left of the (small) config blob: written over, whatever it holds."""
    config = json.loads(registries.images["busybox"].manifest)["config"]["digest"]
    store.tmp.mkdir(parents=True)
    store.partial_blob(config).write_bytes(b'{"half": ')
    image = pull_image(store, registries.refs["busybox"], auth=anonymous)
    assert image.config.cmd == ("sh",)
    data = store.blob_path(config).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == config
