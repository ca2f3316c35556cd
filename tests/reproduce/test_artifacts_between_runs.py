"""Artifacts between runs: a job whose needs did not run uses the last run's artifacts of the
same pipeline file and says so; without any, it says which job to run first; `-f other.yml`
keeps its own. And the import of a GitLab artifacts archive keeps to the job's directory."""

from __future__ import annotations

import io
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from runner.build.artifacts import ArtifactStore
from runner.cli import main

PIPELINE = """
build:
  stage: build
  script: [mkdir -p out, echo "{text}" > out/x]
  artifacts: {{paths: [out/]}}
test:
  stage: test
  script: [cat out/x]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PYCI_BUILDS_DIR", str(tmp_path / "builds"))
    repo = tmp_path / "demo"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(PIPELINE.format(text="from gitlab-ci"))
    (repo / "other.yml").write_text(PIPELINE.format(text="from other"))
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


def run(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", "-C", str(repo), "--executor", "shell", "--plain", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_last_run_of_the_same_file_is_used_and_said(project, capsys):
    code, out, err = run(project, capsys, "test")
    assert code == 1
    assert (
        "note: build has no artifacts from an earlier run of .gitlab-ci.yml: "
        "run `pyci run build` first, or add --needs" in err
    )
    assert run(project, capsys, "build")[0] == 0
    assert run(project, capsys, "build", "-f", "other.yml")[0] == 0
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout
    code, out, err = run(project, capsys, "test")
    assert code == 0, out + err
    assert "[test] from gitlab-ci" in out  # not other.yml's, run later
    notes = [line for line in err.splitlines() if line.startswith("note: using")]
    assert len(notes) == 1
    assert notes[0].startswith("note: using the artifacts of build from the last run of ")
    assert f"commit {sha[:8]})" in notes[0] and " s ago" in notes[0]
    code, out, err = run(project, capsys, "test", "-f", "other.yml")
    assert "[test] from other" in out


def test_other_files_say_their_own_command(project, capsys):
    _, _, err = run(project, capsys, "test", "-f", "other.yml")
    assert "run `pyci run -f other.yml build` first, or add --needs" in err


def zip_with(entries: list[tuple[str, bytes, int]]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    buffer.seek(0)
    return buffer


def test_an_archive_is_imported_inside_the_jobs_directory_only(tmp_path):
    store = ArtifactStore(tmp_path / ".pyci")
    archive = zip_with(
        [
            ("out/ok.txt", b"ok", stat.S_IFREG | 0o644),
            ("out/run.sh", b"#!/bin/sh", stat.S_IFREG | 0o755),
            ("../escape.txt", b"no", stat.S_IFREG | 0o644),
            ("/abs.txt", b"no", stat.S_IFREG | 0o644),
            ("out/link", b"/etc/passwd", stat.S_IFLNK | 0o777),
            ("plain.txt", b"permissions only", 0o600),
        ]
    )
    count = store.import_archive("build", archive, origin="https://x/-/jobs/1", commit="abc")
    stored = store.job_dir("build")
    assert count == 3
    assert sorted(str(p.relative_to(stored)) for p in stored.rglob("*")) == [
        "out",
        "out/ok.txt",
        "out/run.sh",
        "plain.txt",
    ]
    assert (stored / "out" / "run.sh").stat().st_mode & 0o100
    assert not (tmp_path / ".pyci" / "artifacts" / "escape.txt").exists()
    assert store.metadata("build")["origin"] == "https://x/-/jobs/1"
    with pytest.raises(OSError, match="not a zip file"):
        store.import_archive("build", io.BytesIO(b"not a zip"), origin="x", commit="")
