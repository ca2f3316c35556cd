"""Pulls from real registries on loopback: layouts, platforms, compression, auth, policies."""

import base64
import os
import stat
import subprocess

import pytest

from executors.images.auth import CredentialStore
from executors.images.errors import ImagePullError
from executors.images.extract import OPAQUE_XATTR
from executors.images.pull import pull_image, pull_with_policies
from executors.images.registry import RequestCounter
from executors.images.store import ImageStore

from .conftest import BUSYBOX, NET_RAW_CAPABILITY, USERS

pytestmark = [pytest.mark.registry, pytest.mark.root]


def alice_for(host: str) -> CredentialStore:
    auth = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    return CredentialStore([{"auths": {host: {"auth": auth}}}])


def test_busybox_pulls_runs_and_has_its_config(registries, store, anonymous):
    image = pull_image(store, registries.refs["busybox"], auth=anonymous)
    assert image.reference == registries.refs["busybox"]
    assert image.digest == registries.digests["busybox"]
    (root,) = image.layer_dirs
    assert (root / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    assert stat.S_IMODE(os.stat(root / "bin/busybox").st_mode) == 0o755
    assert os.readlink(root / "bin/sh") == "busybox"
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    # the extracted binary really works (static busybox needs nothing else)
    out = subprocess.run([root / "bin/busybox", "echo", "hi"], capture_output=True, text=True)
    assert out.stdout == "hi\n"
    config = image.config
    assert config.cmd == ("sh",) and config.entrypoint is None
    assert config.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    assert config.working_dir == "/" and config.user == ""
    assert config.exposed_ports == ("8080/tcp",)


def test_cached_image_costs_zero_requests_and_survives_a_new_store_object(
    registries, store, anonymous
):
    first = pull_image(store, registries.refs["busybox"], auth=anonymous)
    assert first.requests >= 3  # manifest, config, layer
    counter = RequestCounter()
    again = pull_image(ImageStore(store.home), registries.refs["busybox"], counter=counter)
    assert counter.count == 0 and again.requests == 0
    assert again == first
    assert ImageStore(store.home).get(registries.refs["busybox"]) == first
    pinned = f"{registries.refs['busybox'].rsplit(':', 1)[0]}@{first.digest}"
    assert pull_image(store, pinned, auth=anonymous).requests == 0


def test_layers_stack_with_whiteouts_links_setuid_and_xattrs(registries, store, anonymous):
    image = pull_image(store, registries.refs["layered"], auth=anonymous)
    bottom, middle, top = image.layer_dirs
    assert (bottom / "etc/gone").read_text() == "to be whited out\n"
    whiteout = os.lstat(top / "etc/gone")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(top / "opaque", OPAQUE_XATTR) == b"y"
    assert (top / "opaque/new").read_text() == "only me\n"
    owned = os.lstat(bottom / "data/owned")
    assert (owned.st_uid, owned.st_gid, owned.st_mtime) == (1000, 100, 1_500_000_000)
    assert stat.S_IMODE(os.lstat(middle / "usr/bin/su-like").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(middle / "usr/bin/sgid").st_mode) == 0o2755
    assert stat.S_IMODE(os.lstat(middle / "shared").st_mode) == 0o1777
    ping = middle / "usr/bin/ping-like"
    assert os.getxattr(ping, "security.capability") == NET_RAW_CAPABILITY
    assert os.getxattr(ping, "user.pyci") == b"hello"
    assert os.lstat(middle / "usr/bin/alias").st_ino == os.lstat(middle / "usr/bin/original").st_ino
    assert os.readlink(middle / "usr/bin/absolute") == "/etc/keep"
    assert stat.S_ISFIFO(os.lstat(middle / "dev/pipe").st_mode)
    assert os.lstat(middle / "dev/null").st_rdev == os.makedev(1, 3)
    assert len(set(image.chain_ids)) == 3


def test_overlayfs_mounts_the_layers_as_docker_would_show_them(
    registries, store, anonymous, tmp_path
):
    from executors.images.lowerdirs import lowerdir_option

    image = pull_image(store, registries.refs["layered"], auth=anonymous)
    target = tmp_path / "merged"
    target.mkdir()
    lower = lowerdir_option(store, image)
    mount = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", lower.option(), str(target)],
        capture_output=True,
        text=True,
    )
    assert mount.returncode == 0, mount.stderr
    try:
        assert not (target / "etc/gone").exists()
        assert (target / "etc/keep").read_text() == "kept\n"
        assert sorted(os.listdir(target / "opaque")) == ["new"]
        assert (target / "usr/bin/alias").read_text() == "linked content\n"
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_index_selects_the_host_platform_and_skips_attestations(registries, store, anonymous):
    ref = registries.refs["platforms"]
    _, arm64, armv6, armv7, amd64 = registries.platform_images
    image = pull_image(store, ref, auth=anonymous)
    assert image.digest == registries.digests["platforms"]  # the index: what users pin
    assert image.manifest_digest == amd64.digest
    assert (image.layer_dirs[0] / "arch").read_text() == "amd64"
    for wanted, expected, name in (
        ("linux/arm64/v8", arm64, "arm64"),
        ("linux/arm64", arm64, "arm64"),
        ("linux/arm/v7", armv7, "armv7"),
        ("linux/arm/v6", armv6, "armv6"),
    ):
        other = pull_image(ImageStore(store.home / wanted.replace("/", "-")), ref,
                           auth=anonymous, platform=wanted)  # fmt: skip
        assert other.manifest_digest == expected.digest
        assert (other.layer_dirs[0] / "arch").read_text() == name
    with pytest.raises(
        Exception, match=r"no image for platform linux/s390x \(offers: linux/arm64/v8"
    ):
        pull_image(ImageStore(store.home / "s390x"), ref, auth=anonymous, platform="linux/s390x")


def test_zstd_and_uncompressed_layers(registries, store, anonymous):
    image = pull_image(store, registries.refs["compression"], auth=anonymous)
    assert (image.layer_dirs[0] / "zstd-file").read_bytes() == b"z" * 100_000
    assert (image.layer_dirs[1] / "plain-file").read_bytes() == b"p"


def test_basic_auth_needs_the_right_credentials(registries, store, anonymous):
    ref = registries.refs["basic"]
    with pytest.raises(Exception, match="Basic authentication required and no credentials"):
        pull_image(store, ref, auth=anonymous)
    wrong = CredentialStore(
        [{"auths": {registries.basic.host: {"username": "alice", "password": "x"}}}]
    )
    with pytest.raises(Exception, match="HTTP 401"):
        pull_image(store, ref, auth=wrong)
    image = pull_image(store, ref, auth=alice_for(registries.basic.host))
    assert (image.layer_dirs[0] / "bin/busybox").is_file()


def test_basic_auth_from_docker_auth_config_and_config_file(registries, tmp_path, monkeypatch):
    auth = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    document = f'{{"auths": {{"{registries.basic.host}": {{"auth": "{auth}"}}}}}}'
    monkeypatch.setenv("DOCKER_AUTH_CONFIG", document)
    image = pull_image(ImageStore(tmp_path / "a"), registries.refs["basic"])
    assert image.layer_dirs
    monkeypatch.delenv("DOCKER_AUTH_CONFIG")
    config_dir = tmp_path / "dockercfg"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(document)
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    assert pull_image(ImageStore(tmp_path / "b"), registries.refs["basic"]).layer_dirs


def test_token_auth_anonymous_and_with_credentials(registries, store, anonymous):
    tokens = registries.tokens
    tokens.issued.clear()
    public = pull_image(store, registries.refs["token-public"], auth=anonymous)
    assert (public.layer_dirs[0] / "zstd-file").is_file()
    assert tokens.issued == [
        {"user": None, "scope": ["repository:public/open:pull"], "method": "GET"}
    ]
    with pytest.raises(Exception, match="HTTP 401"):
        pull_image(store, registries.refs["token-private"], auth=anonymous)
    tokens.issued.clear()
    private = pull_image(
        store, registries.refs["token-private"], auth=alice_for(registries.token.host)
    )
    assert (private.layer_dirs[0] / "bin/busybox").is_file()
    # one token served the manifest, the config and the layer
    assert tokens.issued == [
        {"user": "alice", "scope": ["repository:private/locked:pull"], "method": "GET"}
    ]
    bad = CredentialStore(
        [{"auths": {registries.token.host: {"username": "alice", "password": "no"}}}]
    )
    with pytest.raises(Exception, match="credentials refused"):
        pull_image(ImageStore(store.home / "x"), registries.refs["token-private"], auth=bad)


def test_expired_token_is_replaced(registries, store, anonymous):
    tokens = registries.tokens
    tokens.issued.clear()
    tokens.expired_first = True
    try:
        image = pull_image(store, registries.refs["token-public"], auth=anonymous)
    finally:
        tokens.expired_first = False
    assert image.layer_dirs
    assert len(tokens.issued) == 2  # the registry refused the first, a fresh one worked


def test_pull_policies(registries, store, anonymous):
    ref = registries.refs["busybox"]
    with pytest.raises(Exception, match="not present and the pull policy is never"):
        pull_image(store, ref, policy="never", auth=anonymous)
    with pytest.raises(Exception, match="invalid pull policy 'sometimes'"):
        pull_image(store, ref, policy="sometimes", auth=anonymous)
    first = pull_image(store, ref, policy="if-not-present", auth=anonymous)
    assert pull_image(store, ref, policy="never").requests == 0
    again = pull_image(store, ref, policy="always", auth=anonymous)
    assert again == first
    assert 1 <= again.requests <= 2  # the manifest only: nothing else is missing
    unreachable = "127.0.0.1:9/library/busybox:v1"
    with pytest.raises(Exception, match="every pull policy failed"):
        pull_with_policies(store, unreachable, ["always", "if-not-present"], auth=anonymous)


def test_always_falls_back_to_the_cache_with_a_policy_list(registries, store, anonymous, proxy):
    ref = f"{proxy.host}/library/busybox:v1"
    cached = pull_image(store, ref, auth=anonymous)
    proxy.stop()  # the registry is gone: `always` fails, `if-not-present` serves the cache
    with pytest.raises(Exception, match="ConnectError"):
        pull_image(store, ref, policy="always", auth=anonymous)
    pulled = pull_with_policies(store, ref, ["always", "if-not-present"], auth=anonymous)
    assert pulled == cached and pulled.requests == 0


def test_missing_image_and_tag_are_clear_errors(registries, store, anonymous):
    host = registries.plain.host
    with pytest.raises(Exception, match=r"manifest nope: HTTP 404 \(not found\)"):
        pull_image(store, f"{host}/library/busybox:nope", auth=anonymous)
    with pytest.raises(Exception, match="HTTP 404"):
        pull_image(store, f"{host}/no/such:v1", auth=anonymous)


def test_hub_mirror_is_used_for_docker_hub_images(registries, store, anonymous, proxy):
    """A Docker Hub image (`library/busybox`) is served by the mirror; Docker Hub is never
    contacted, so this test needs no internet."""
    image = pull_image(store, "busybox:v1", auth=anonymous, mirrors=[f"http://{proxy.host}"])
    assert image.reference == "docker.io/library/busybox:v1"
    assert (image.layer_dirs[0] / "bin/busybox").is_file()
    assert any(path == "/v2/library/busybox/manifests/v1" for _, path, _ in proxy.requests)


def test_plain_http_only_for_loopback_or_insecure_registries(registries, store, anonymous):
    """0.0.0.0 reaches this host, but is not a loopback *name*: plain HTTP needs
    --insecure-registry, as with Docker."""
    host = f"0.0.0.0:{registries.plain.port}"
    ref = f"{host}/library/busybox:v1"
    with pytest.raises(ImagePullError, match="ConnectError"):
        pull_image(store, ref, auth=anonymous)
    image = pull_image(store, ref, auth=anonymous, insecure=[host])
    assert image.digest == registries.digests["busybox"]


def test_rich_progress_renders_a_bar_per_layer(registries, store, anonymous):
    import io

    from rich.console import Console

    from executors.images.progress import RichProgress

    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    with RichProgress(console) as progress:
        pull_image(store, registries.refs["layered"], auth=anonymous, progress=progress)
    text = console.file.getvalue()
    for digest in registries.images["layered"].layer_digests:
        assert f"{digest[7:19]} done" in text
    layer_sizes = [
        len(registries.images["layered"].blobs[d])
        for d in registries.images["layered"].layer_digests
    ]
    for size in layer_sizes:
        assert f"{size}/{size} bytes" in text  # every byte of every layer was counted


def test_tag_and_digest_pulls_the_digest(registries, store, anonymous):
    name = registries.refs["busybox"].rsplit(":", 1)[0]
    image = pull_image(store, f"{name}:no-such-tag@{registries.digests['busybox']}", auth=anonymous)
    assert image.digest == registries.digests["busybox"]
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImagePullError, match="HTTP 404"):
        pull_image(store, f"{name}@{wrong}", auth=anonymous)


def test_docker_manifest_list_selects_the_platform(registries, store, anonymous):
    from .imagelib import Pusher, build_image, build_index, file, make_tar

    def arch_image(arch: str, variant: str = ""):
        layer = make_tar([file("arch", f"docker-{arch}{variant}".encode())])
        return build_image([layer], "gzip", arch=arch, variant=variant, flavor="docker")

    amd64, arm64 = arch_image("amd64"), arch_image("arm64", "v8")
    index = build_index(
        [
            (arm64, {"os": "linux", "architecture": "arm64", "variant": "v8"}, None),
            (amd64, {"os": "linux", "architecture": "amd64"}, None),
        ],
        flavor="docker",
    )
    pusher = Pusher(registries.plain.url)
    try:
        pusher.push_index("test/dockerlist", "v1", [amd64, arm64], index, flavor="docker")
    finally:
        pusher.close()
    image = pull_image(store, f"{registries.plain.host}/test/dockerlist:v1", auth=anonymous)
    assert image.manifest_digest == amd64.digest
    assert (image.layer_dirs[0] / "arch").read_text() == "docker-amd64"


def test_repeated_and_empty_layers(registries, store, anonymous):
    """Docker images often carry the same (empty) layer twice: one blob, two chain ids."""
    from .imagelib import Pusher, build_image, file, make_tar

    empty = make_tar([])
    layers = [make_tar([file("a", b"1")]), empty, make_tar([file("b", b"2")]), empty]
    image = build_image(layers, "gzip")
    assert len(set(image.layer_digests)) == 3
    pusher = Pusher(registries.plain.url)
    try:
        pusher.push_image("test/repeated", "v1", image)
    finally:
        pusher.close()
    pulled = pull_image(store, f"{registries.plain.host}/test/repeated:v1", auth=anonymous)
    assert len(set(pulled.chain_ids)) == 4
    assert [sorted(os.listdir(d)) for d in pulled.layer_dirs] == [["a"], [], ["b"], []]


def test_identity_token_is_exchanged_with_the_oauth_form(registries, store):
    """`docker login` with OAuth leaves an identity token: it is POSTed as a refresh token."""
    tokens = registries.tokens
    tokens.issued.clear()
    host = registries.token.host
    creds = CredentialStore([{"auths": {host: {"identitytoken": "refresh-alice"}}}])
    image = pull_image(store, registries.refs["token-private"], auth=creds)
    assert (image.layer_dirs[0] / "bin/busybox").is_file()
    assert tokens.issued == [
        {"user": "alice", "scope": ["repository:private/locked:pull"], "method": "POST"}
    ]


def test_credentials_from_a_helper_program(registries, tmp_path, monkeypatch):
    """`credsStore` in ~/.docker/config.json: the real lookup through a docker-credential-*
    program on PATH, against the htpasswd registry."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-pycitest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'[ "$server" = "{registries.basic.host}" ] || exit 1\n'
        f'echo \'{{"Username":"alice","Secret":"{USERS["alice"]}"}}\'\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / "config.json").write_text('{"credsStore": "pycitest"}')
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    image = pull_image(ImageStore(tmp_path / "home"), registries.refs["basic"])
    assert (image.layer_dirs[0] / "bin/busybox").is_file()
