"""`pyci image ...` run in-process through the real CLI entry point."""

import json

import pytest

from runner.cli import main

pytestmark = [pytest.mark.registry, pytest.mark.root]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_pull_ls_inspect_rm_prune(registries, home, capsys):
    ref = registries.refs["busybox"]
    assert main(["image", "pull", ref]) == 0
    out = capsys.readouterr().out
    assert f"{ref}@{registries.digests['busybox']}" in out
    assert "downloading" in out and "done in" in out  # plain lines: stdout is not a TTY

    assert main(["image", "pull", "--pull-policy", "if-not-present", ref]) == 0
    assert "1 layers, 0 requests" in capsys.readouterr().out

    assert main(["image", "ls", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["reference"] == ref and listed["digest"] == registries.digests["busybox"]
    assert listed["platform"] == "linux/amd64" and listed["layers"] == 1

    assert main(["image", "ls"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["REFERENCE", "DIGEST", "PLATFORM", "LAYERS", "SIZE"]
    assert table[1].startswith(ref)

    assert main(["image", "inspect", ref]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"]["Cmd"] == ["sh"] and len(record["layer_dirs"]) == 1

    assert main(["image", "rm", ref]) == 0
    assert f"untagged: {ref}" in capsys.readouterr().out
    assert main(["image", "prune"]) == 0
    assert "deleted 2 blobs, 1 layers and 0 temp entries, freed " in capsys.readouterr().out
    assert main(["image", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_prune_with_a_max_size_evicts_images_nobody_uses(registries, home, capsys):
    from executors.images.store import ImageStore

    ImageStore(home)  # the store exists, empty
    ref = registries.refs["busybox"]
    # pulled by another process that has exited: no live process holds the image
    from .test_store import start_pull

    _, err = start_pull(home, ref).communicate(timeout=60)
    assert not err
    assert main(["image", "prune", "--max-size", "1k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "evicted 1 least recently used images to fit 1.0 kB"
    assert lines[1].startswith("deleted 2 blobs, 1 layers and 0 temp entries, freed ")
    with pytest.raises(SystemExit) as exit_:
        main(["image", "prune", "--max-size", "lots"])
    assert exit_.value.code == 2  # a usage error, said in one line
    assert "argument --max-size: invalid size 'lots'" in capsys.readouterr().err


def test_errors_are_one_line_without_traceback(registries, home, capsys):
    assert main(["image", "pull", "NOT valid"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid image reference") and err.count("\n") == 1
    assert main(["image", "inspect", "alpine"]) == 1
    assert "not in the store" in capsys.readouterr().err
    assert main(["image", "pull", "--pull-policy", "never", "alpine"]) == 1
    assert "pull policy is never" in capsys.readouterr().err


def test_mirror_from_the_environment(registries, home, capsys, monkeypatch, proxy):
    monkeypatch.setenv("PYCI_REGISTRY_MIRROR", f"http://{proxy.host}")
    assert main(["image", "pull", "busybox:v1"]) == 0
    assert "docker.io/library/busybox:v1@" in capsys.readouterr().out
    assert proxy.requests
