"""The store's size cap (`PYCI_STORE_MAX`): least recently used images go first, never one a
live process holds; and the store's home is private."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from executors.images.store import ImageStore
from executors.statedirs import StateDirError

from .imagelib import Pusher, build_image, file, make_tar
from .test_store import REPO_ROOT, start_pull

pytestmark = [pytest.mark.registry, pytest.mark.root]

HOLD_SCRIPT = """
import sys
from executors.images.store import ImageStore
assert ImageStore().get(sys.argv[1]) is not None
print("holding", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def three_images(registries) -> list[str]:
    """Three images of ~400 kB each (random data: gzip cannot shrink it), no layer shared."""
    pusher = Pusher(registries.plain.url)
    refs = []
    try:
        for name in ("old", "middle", "new"):
            layer = make_tar([file(f"{name}.bin", os.urandom(400_000))])
            pusher.push_image(f"cap/{name}", "v1", build_image([layer]))
            refs.append(f"{registries.plain.host}/cap/{name}:v1")
    finally:
        pusher.close()
    return refs


def pull_in_process(home: Path, ref: str, env: dict[str, str] | None = None) -> None:
    """Pulled by another process, which exits: nobody holds the image afterwards."""
    process = start_pull(home, ref) if env is None else _pull_with_env(home, ref, env)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def _pull_with_env(home: Path, ref: str, env: dict[str, str]) -> subprocess.Popen:
    from .test_store import PULL_SCRIPT

    return subprocess.Popen(
        [sys.executable, "-c", PULL_SCRIPT, ref],
        cwd=REPO_ROOT,
        env={**os.environ, "PYCI_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def used_in_order(store: ImageStore, refs: list[str]) -> None:
    """Last use as a job would leave it: the first ref longest ago (record mtimes)."""
    for age, ref in zip(range(len(refs), 0, -1), refs, strict=True):
        path = store.images / f"{store.resolve(_parse(ref)).split(':')[1]}.json"
        os.utime(path, (1_700_000_000 - age * 60,) * 2)


def _parse(ref: str):
    from executors.images.reference import parse_reference

    return parse_reference(ref)


def du(path: Path) -> int:
    total = os.lstat(path).st_blocks * 512
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def present(store: ImageStore, refs: list[str]) -> list[str]:
    return [ref for ref in refs if store.resolve(_parse(ref)) is not None]


def test_prune_with_a_cap_drops_least_recently_used_images_first(tmp_path, three_images):
    home = tmp_path / "home"
    for ref in three_images:
        pull_in_process(home, ref)
    store = ImageStore(home)
    used_in_order(store, [three_images[1], three_images[0], three_images[2]])
    one_image = du(home) // 3
    result = store.prune(max_bytes=int(2.5 * one_image))
    assert present(store, three_images) == [three_images[0], three_images[2]]
    assert (result.images, result.blobs, result.layers) == (1, 2, 1)
    assert result.bytes_freed >= 800_000  # the blob and the extracted layer
    assert du(home) <= 2.5 * one_image


def test_an_image_a_live_process_holds_is_never_evicted(tmp_path, three_images):
    home = tmp_path / "home"
    for ref in three_images[:2]:
        pull_in_process(home, ref)
    store = ImageStore(home)
    used_in_order(store, three_images[:2])  # the first is the least recently used
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, three_images[0]],
        cwd=REPO_ROOT,
        env={**os.environ, "PYCI_HOME": str(home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        result = store.prune(max_bytes=1)  # nothing fits: everything not held goes
        assert present(store, three_images[:2]) == [three_images[0]]
        assert result.images == 1
        assert store.get(three_images[0]) is not None
    finally:
        holder.communicate("done\n", timeout=30)


def test_a_pull_enforces_pyci_store_max(tmp_path, three_images):
    home = tmp_path / "home"
    for ref in three_images[:2]:
        pull_in_process(home, ref)
    used_in_order(ImageStore(home), three_images[:2])
    one_image = du(home) // 2
    pull_in_process(home, three_images[2], {"PYCI_STORE_MAX": str(int(2.5 * one_image))})
    store = ImageStore(home)
    assert present(store, three_images) == three_images[1:]  # the oldest made room
    assert du(home) <= 2.5 * one_image


def test_an_invalid_cap_is_one_line(tmp_path, monkeypatch):
    from executors.images.errors import ImagePullError

    monkeypatch.setenv("PYCI_STORE_MAX", "lots")
    with pytest.raises(ImagePullError, match=r"^PYCI_STORE_MAX: invalid size 'lots'"):
        ImageStore(tmp_path / "home")


def test_the_home_is_made_private_and_layers_have_a_private_parent(tmp_path, registries):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # as an older pyci left it
    pull_in_process(home, registries.refs["busybox"])
    store = ImageStore(home)
    assert home.stat().st_mode & 0o777 == 0o700
    for entry in store.layers.iterdir():
        assert entry.stat().st_mode & 0o777 == 0o700  # the parent of <id>/diff


def test_a_home_owned_by_someone_else_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    with pytest.raises(StateDirError, match=r"home: owned by uid 65534, not by this user"):
        ImageStore(home)
    assert home.stat().st_uid == 65534  # untouched
