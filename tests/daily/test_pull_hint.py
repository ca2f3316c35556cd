"""A pull from a registry that cannot be reached says where to look: a Docker Hub mirror
(`--registry-mirror` / `PYCI_REGISTRY_MIRROR`) and the docker config; a registry that
answers (even with an error) gets no such hint."""

from __future__ import annotations

import http.server
import socket
from collections.abc import Iterator

import pytest

from executors.images.errors import ImagePullError, RegistryUnreachable
from executors.images.pull import pull_image
from executors.images.store import ImageStore
from tests.cli import run_pyci as pyci
from tests.daily.conftest import make_project
from tests.loopback import LoopbackHTTP


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def answering_registry() -> Iterator[str]:
    """A server on loopback that answers every request with 404."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls it by this name
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    with LoopbackHTTP(NotFound) as server:
        yield f"127.0.0.1:{server.port}"


def test_an_unreachable_registry_names_the_mirror_options_and_the_docker_config(tmp_path):
    with pytest.raises(RegistryUnreachable) as caught:
        pull_image(ImageStore(tmp_path / "home"), f"127.0.0.1:{closed_port()}/library/x:1")
    message = str(caught.value)
    assert "Connection refused" in message
    for named in ("--registry-mirror", "PYCI_REGISTRY_MIRROR", "~/.docker/config.json"):
        assert named in message


def test_a_registry_that_answers_gets_no_mirror_hint(tmp_path, answering_registry):
    with pytest.raises(ImagePullError) as caught:
        pull_image(ImageStore(tmp_path / "home"), f"{answering_registry}/library/x:1")
    assert not isinstance(caught.value, RegistryUnreachable)
    assert "--registry-mirror" not in str(caught.value)


def test_a_job_whose_image_registry_is_unreachable_says_so_in_its_log(tmp_path, env):
    image = f"127.0.0.1:{closed_port()}/library/x:1"
    repo = make_project(
        tmp_path, {".gitlab-ci.yml": f"job:\n  image: {image}\n  script: [echo hi]\n"}
    )
    run = pyci(repo, env, "run", "--plain", "--executor", "container")
    assert run.returncode == 1
    errors = [
        line
        for line in run.stdout.splitlines()
        if line.startswith("[job] ERROR: Job failed (image pull failure)")
    ]
    assert len(errors) == 1, run.stdout
    assert "--registry-mirror URL or PYCI_REGISTRY_MIRROR" in errors[0]
