"""scripts/setup.sh installs only what pyci needs to run; scripts/test.sh (which .ci/run calls)
adds what only the tests use. Run here against a fake apt (dpkg-query says nothing is
installed, apt-get and the venv's python record what they are asked)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.run.conftest import REPO_ROOT

TEST_ONLY = {"docker-registry", "skopeo", "umoci", "debootstrap", "apache2-utils", "crun"}
RUNTIME = {"git", "iptables", "libseccomp2"}


def fake_tree(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A copy of scripts/ and .ci/ with fakes of dpkg-query, apt-get and .venv/bin/python."""
    tree = tmp_path / "clone"
    shutil.copytree(REPO_ROOT / "scripts", tree / "scripts")
    shutil.copytree(REPO_ROOT / ".ci", tree / ".ci")
    record = tmp_path / "calls.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "dpkg-query": "exit 1",  # nothing is installed
        "apt-get": f'echo "apt-get $*" >> {record}',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    venv_python = tree / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\necho "python $*" >> {record}\n')
    venv_python.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return tree, record, env


def installed(record: Path) -> tuple[set[str], list[str]]:
    """(Debian packages asked for, pip/pytest calls)."""
    lines = record.read_text().splitlines()
    packages = {
        word
        for line in lines
        if line.startswith("apt-get install")
        for word in line.split()[2:]
        if not word.startswith("-")
    }
    return packages, [line for line in lines if line.startswith("python ")]


def test_setup_installs_only_what_pyci_needs_to_run(tmp_path):
    tree, record, env = fake_tree(tmp_path)
    subprocess.run([str(tree / "scripts" / "setup.sh")], env=env, check=True, capture_output=True)
    packages, python = installed(record)
    assert packages >= RUNTIME
    assert not packages & (TEST_ONLY | {"busybox-static", "openssl"})
    assert python == ["python -m pip install -q --disable-pip-version-check -e ."]


def test_the_ci_entry_point_installs_what_the_tests_use_then_runs_them(tmp_path):
    tree, record, env = fake_tree(tmp_path)
    subprocess.run(["bash", str(tree / ".ci" / "run")], env=env, check=True, capture_output=True)
    packages, python = installed(record)
    assert packages >= RUNTIME | TEST_ONLY | {"busybox-static", "openssl"}
    assert python == [
        "python -m pip install -q --disable-pip-version-check -e .",
        "python -m pip install -q --disable-pip-version-check -e .[test]",
        "python -m pytest -q",
    ]
