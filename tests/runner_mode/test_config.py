"""`pyci runner register / verify / list / unregister / run` and the config file, against the
runner API double (through the command line, in a child process as a user runs it)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.fake_gitlab_runner import REGISTRATION_TOKEN, RUNNER_TOKEN, FakeGitLabRunner
from tests.runner_mode.conftest import REPO_ROOT, Box, stop
from tests.runner_mode.test_end_to_end import assert_reported


def pyci(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", "runner", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.DEVNULL,
    )


def register(gitlab: FakeGitLabRunner, config: Path, token: str, name: str, *extra: str):
    return pyci(
        "register",
        *("--url", gitlab.url, "--token", token, "--name", name),
        *("--default-image", "alpine:3.20", "--config", str(config), *extra),
    )


def test_register_with_an_authentication_token(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "runner.toml"
    with FakeGitLabRunner() as gitlab:
        done = register(gitlab, config, RUNNER_TOKEN, "box-1", "--concurrent", "3")
        assert done.returncode == 0, done.stderr
        (verify,) = gitlab.requests_to("POST", "/runners/verify")
        assert json.loads(verify.body)["token"] == RUNNER_TOKEN
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    data = tomllib.loads(config.read_text())
    assert data["concurrent"] == 3
    (runner,) = data["runners"]
    assert (runner["name"], runner["url"], runner["token"]) == ("box-1", gitlab.url, RUNNER_TOKEN)
    assert runner["container"]["image"] == "alpine:3.20"
    assert RUNNER_TOKEN not in done.stdout


def test_register_with_a_registration_token_then_list_verify_unregister(tmp_path: Path) -> None:
    config = tmp_path / "runner.toml"
    with FakeGitLabRunner() as gitlab:
        done = register(gitlab, config, REGISTRATION_TOKEN, "legacy", "--tag-list", "a, b")
        assert done.returncode == 0, done.stderr
        (sent,) = gitlab.registered
        assert (sent["description"], sent["tag_list"], sent["run_untagged"]) == (
            "legacy",
            "a,b",
            False,
        )
        assert sent["info"]["executor"] == "container"
        (runner,) = tomllib.loads(config.read_text())["runners"]
        assert runner["token"] == RUNNER_TOKEN  # the one the server handed out
        listed = pyci("list", "--config", str(config))
        assert listed.returncode == 0
        assert "legacy\texecutor=container" in listed.stdout
        assert RUNNER_TOKEN not in listed.stdout
        assert pyci("verify", "--config", str(config)).stdout == "legacy: valid\n"
        again = register(gitlab, config, RUNNER_TOKEN, "legacy")
        assert again.returncode == 2
        assert "a runner named 'legacy' is already registered" in again.stderr
        gone = pyci("unregister", "--name", "legacy", "--config", str(config))
        assert gone.returncode == 0, gone.stderr
        assert gitlab.requests_to("DELETE", "/api/v4/runners")
        assert tomllib.loads(config.read_text()).get("runners", []) == []
        gitlab.runner_token = "glrt-revoked"
        register(gitlab, config, "glrt-revoked", "other")
        gitlab.runner_token = "glrt-changed-again"
        invalid = pyci("verify", "--config", str(config))
        assert invalid.returncode == 1
        assert invalid.stdout.startswith("other: not valid: verify the runner token: forbidden")


def test_a_bad_token_registers_nothing(tmp_path: Path) -> None:
    config = tmp_path / "runner.toml"
    with FakeGitLabRunner() as gitlab:
        done = register(gitlab, config, "glrt-wrong", "box")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: register box: verify the runner token: forbidden (the token is invalid?)"
    )
    assert not config.exists()


def test_a_config_other_users_can_read_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "runner.toml"
    config.write_text('concurrent = 1\n[[runners]]\nname = "x"\n')
    config.chmod(0o644)
    listed = pyci("list", "--config", str(config))
    assert listed.returncode == 2
    assert listed.stderr.strip() == (
        f"error: {config}: other users can read it (it holds tokens): chmod 600 {config}"
    )


def test_a_runner_without_default_image_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "runner.toml"
    config.write_text(f'[[runners]]\nname = "x"\nurl = "http://h"\ntoken = "{RUNNER_TOKEN}"\n')
    config.chmod(0o600)
    run = pyci("run", "--config", str(config))
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: {config}: runners[0].container.image: required (jobs never run over the "
        "host's root)"
    )


def test_run_serves_the_configured_runners(box: Box) -> None:
    config = box.tmp / "runner.toml"
    config.write_text(
        "concurrent = 1\ncheck_interval = 0.2\n[[runners]]\n"
        f'name = "cfg"\nurl = "{box.gitlab.url}"\ntoken = "{RUNNER_TOKEN}"\n'
        f'builds_dir = "{box.tmp / "builds"}"\ncache_dir = "{box.tmp / "cache"}"\n'
        f'[runners.container]\nimage = "{box.image}"\nnetwork = "none"\n'
    )
    config.chmod(0o600)
    job = box.queue("from-config", ["echo served"])
    runner = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "runner", "run", "--config", str(config)],
        env=box.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    box.started.append(runner)
    assert job.finished.wait(120)
    out, err = stop(runner, signal.SIGTERM)
    assert runner.returncode == 0, err
    assert "served" in assert_reported(job, "success")
    assert f"job {job.id} (from-config): started" in out
    assert f"job {job.id} (from-config): success" in out


def test_a_shell_runner_registers_without_an_image(tmp_path: Path) -> None:
    config = tmp_path / "runner.toml"
    with FakeGitLabRunner() as gitlab:
        done = pyci(
            "register",
            *("--url", gitlab.url, "--token", RUNNER_TOKEN, "--name", "shell-box"),
            *("--executor", "shell", "--config", str(config)),
        )
        assert done.returncode == 0, done.stderr
        missing = pyci(
            "register",
            *("--url", gitlab.url, "--token", RUNNER_TOKEN, "--name", "container-box"),
            *("--config", str(tmp_path / "other.toml")),
        )
    (runner,) = tomllib.loads(config.read_text())["runners"]
    assert runner["executor"] == "shell"
    listed = pyci("list", "--config", str(config))
    assert listed.returncode == 0 and "executor=shell" in listed.stdout
    assert missing.returncode == 2
    assert "--default-image: required for a container runner" in missing.stderr
