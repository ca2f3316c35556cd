"""Image references get Docker's defaults; malformed ones fail with one clear line."""

import pytest

from executors.images.errors import ImagePullError
from executors.images.reference import is_loopback, normalize, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.19", "docker.io/library/alpine:3.19"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
        ("index.docker.io/library/alpine:1", "docker.io/library/alpine:1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v2", "localhost:5000/app:v2"),
        ("registry.example.com/group/sub/app", "registry.example.com/group/sub/app:latest"),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
        (f"alpine@{DIGEST}", f"docker.io/library/alpine@{DIGEST}"),
        (f"alpine:3.19@{DIGEST}", f"docker.io/library/alpine:3.19@{DIGEST}"),
        ("my-app_x.y__z:tag_1.0-rc", "docker.io/library/my-app_x.y__z:tag_1.0-rc"),
    ],
)
def test_docker_defaults(text, expected):
    assert normalize(text) == expected


def test_parts_of_a_pinned_reference():
    ref = parse_reference(f"localhost:5000/group/app:v1@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "localhost:5000",
        "group/app",
        "v1",
        DIGEST,
    )
    assert ref.manifest_ref == DIGEST  # the digest wins over the tag
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("quay.io/x/y").api_host == "quay.io"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("alpine:", "bad tag"),
        ("alpine:bad/tag", "bad registry"),
        ("alpine@sha256:1234", "bad digest"),
        ("alpine@sha256:" + "AB" * 32, "lowercase hex"),
        ("a//b", "bad path component"),
        ("-app", "bad path component"),
        ("app ", "spaces"),
        ("registry:5000/", "no repository"),
        ("a" * 300, "longer than 255"),
    ],
)
def test_malformed_references_are_one_line_errors(text, why):
    with pytest.raises(ImagePullError) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert why in message and "\n" not in message and "invalid image reference" in message


def test_loopback_hosts():
    assert is_loopback("localhost:5000")
    assert is_loopback("127.0.0.1:41000")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("registry.example:5000")
    assert not is_loopback("10.0.0.1:5000")
