"""Credentials from docker config files, DOCKER_AUTH_CONFIG and credential helpers; the
WWW-Authenticate parser and the bearer token cache."""

import base64
import json
import os

import pytest

from executors.images.auth import (
    Credentials,
    CredentialStore,
    TokenCache,
    parse_challenge,
)
from executors.images.errors import ImagePullError


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def helper_bin(tmp_path, monkeypatch):
    """A real `docker-credential-fake` program on PATH that logs what it was asked."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "helper.log"
    script = bindir / "docker-credential-fake"
    script.write_text(
        "#!/bin/sh\n"
        f'read server; echo "$1 $server" >> {log}\n'
        'case "$server" in\n'
        '  reg.example) echo \'{"Username":"helper-user","Secret":"helper-pass"}\' ;;\n'
        '  tok.example) echo \'{"Username":"<token>","Secret":"refresh-me"}\' ;;\n'
        '  https://index.docker.io/v1/) echo \'{"Username":"hub","Secret":"hubpw"}\' ;;\n'
        "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_auths_entries_with_auth_or_username_and_hub_legacy_key():
    store = CredentialStore(
        [
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": b64("hubuser:hub:pw")},
                    "registry.example:5000": {"username": "u", "password": "p"},
                    "https://other.example/v2/": {"auth": b64("o:q")},
                }
            }
        ]
    )
    assert store.lookup("docker.io") == Credentials("hubuser", "hub:pw")
    assert store.lookup("registry-1.docker.io") == Credentials("hubuser", "hub:pw")
    assert store.lookup("registry.example:5000") == Credentials("u", "p")
    assert store.lookup("other.example") == Credentials("o", "q")
    assert store.lookup("unknown.example") is None


def test_docker_auth_config_comes_before_the_config_file(tmp_path):
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(
        json.dumps(
            {"auths": {"r.example": {"auth": b64("file:one")}, "f.example": {"auth": b64("f:f")}}}
        )
    )
    env = {
        "DOCKER_CONFIG": str(config_dir),
        "DOCKER_AUTH_CONFIG": json.dumps({"auths": {"r.example": {"auth": b64("env:two")}}}),
    }
    store = CredentialStore.from_environment(env=env)
    assert store.lookup("r.example") == Credentials("env", "two")
    assert store.lookup("f.example") == Credentials("f", "f")
    job_variable = json.dumps({"auths": {"r.example": {"auth": b64("job:three")}}})
    store = CredentialStore.from_environment(docker_auth_config=job_variable, env=env)
    assert store.lookup("r.example") == Credentials("job", "three")


def test_broken_docker_auth_config_is_one_line_error():
    with pytest.raises(ImagePullError, match="DOCKER_AUTH_CONFIG: not valid JSON"):
        CredentialStore.from_environment(
            env={"DOCKER_AUTH_CONFIG": "{nope", "HOME": "/nonexistent"}
        )


def test_cred_helpers_and_creds_store_run_the_helper_program(helper_bin):
    store = CredentialStore(
        [{"credHelpers": {"reg.example": "fake", "tok.example": "fake"}, "credsStore": "fake"}]
    )
    assert store.lookup("reg.example") == Credentials("helper-user", "helper-pass")
    assert store.lookup("tok.example") == Credentials(identity_token="refresh-me")
    # credsStore asks for Docker Hub under its legacy server URL
    assert store.lookup("docker.io") == Credentials("hub", "hubpw")
    assert store.lookup("nothing.example") is None
    asked = helper_bin.read_text().splitlines()
    assert asked == [
        "get reg.example",
        "get tok.example",
        "get https://index.docker.io/v1/",
        "get nothing.example",
    ]
    store.lookup("reg.example")  # cached: the helper is not asked twice
    assert len(helper_bin.read_text().splitlines()) == 4


def test_missing_helper_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    store = CredentialStore([{"credHelpers": {"reg.example": "absent"}}])
    with pytest.raises(ImagePullError, match="docker-credential-absent not found"):
        store.lookup("reg.example")


def test_parse_bearer_and_basic_challenges():
    bearer = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic.scheme == "basic" and basic.params == {"realm": "Registry Realm"}
    assert parse_challenge("") is None


def test_token_cache_expires_tokens():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    key = ("realm", "service", "scope")
    assert cache.put(key, {"access_token": "abc", "expires_in": 300}) == "abc"
    now[0] += 289
    assert cache.get(key) == "abc"
    now[0] += 2  # within 10 s of expiry: not used any more
    assert cache.get(key) is None
    cache.put(key, {"token": "short", "expires_in": 4})  # short-lived: half its life is kept
    now[0] += 1.9
    assert cache.get(key) == "short"
    now[0] += 0.2
    assert cache.get(key) is None
    cache.put(key, {"token": "def"})  # no expires_in: the spec's 60 s default
    now[0] += 49
    assert cache.get(key) == "def"
    now[0] += 2
    assert cache.get(key) is None
    with pytest.raises(ImagePullError, match="without a token"):
        cache.put(key, {"expires_in": 5})
