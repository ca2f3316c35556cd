"""Job artifacts kept in `.pyci/artifacts/`: uploaded after a job, handed to later jobs.

Artifacts are kept per pipeline file, so that a run of `-f other.yml` never replaces what
`.gitlab-ci.yml`'s jobs stored. Layout, per job (`<file>` is the pipeline file's path made
safe for a file name, `<slug>` the job name made safe the same way):
  `.pyci/artifacts/<file>/<slug>/`            the files, at their paths in the project
  `.pyci/artifacts/<file>/<slug>.reports/`    report files (`junit/`, `dotenv`)
  `.pyci/artifacts/<file>/<slug>.json`        what was stored: name, file count, dotenv
                                              variables, when, at which commit, from where
A job's new artifacts replace its old ones in one rename, so a reader sees the old set or the
new one, never half of each; a job that starts clears what an earlier run of it left.
`pyci reproduce` imports a GitLab job's artifacts archive (a zip) as that job's artifacts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from runner.build import fileset, globs
from runner.build.joblog import BuildLog
from runner.core.filenames import file_stem
from runner.core.jobspec import ArtifactsSpec, Variable

DEFAULT_PIPELINE_FILE = ".gitlab-ci.yml"
_DOTENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def job_slug(job: str) -> str:
    """A file name for `job` (runner/filenames.py: safe, short, distinct)."""
    return file_stem(job)


def _file_slug(pipeline_file: str) -> str:
    """The pipeline file's directory name (runner/filenames.py: safe, short, distinct, so that
    `a/b.yml` and `a-b.yml` never share one)."""
    return file_stem(pipeline_file)


def pipeline_file_key(directory: Path, file: Path) -> str:
    """The pipeline file as the artifact store keys it: its path relative to the project."""
    resolved = (Path(directory) / file).resolve()
    try:
        return resolved.relative_to(Path(directory).resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def parse_dotenv(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """`KEY=VALUE` lines -> (pairs, problems). Blank lines and `#` comments are skipped and one
    pair of surrounding quotes is removed; a line GitLab would reject is reported and skipped."""
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        if not sep or not _DOTENV_KEY.fullmatch(key):
            problems.append(f"line {number}: not a KEY=VALUE line")
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        pairs.append((key, value))
    return pairs, problems


class ArtifactStore:
    """`pipeline_file`: the pipeline file's path relative to the project (its key)."""

    def __init__(self, state_dir: Path, pipeline_file: str = DEFAULT_PIPELINE_FILE):
        self.root = Path(state_dir) / "artifacts" / _file_slug(pipeline_file)

    def job_dir(self, job: str) -> Path:
        return self.root / job_slug(job)

    def _reports_dir(self, job: str) -> Path:
        return self.root / f"{job_slug(job)}.reports"

    def _meta_path(self, job: str) -> Path:
        return self.root / f"{job_slug(job)}.json"

    def metadata(self, job: str) -> dict | None:
        try:
            return json.loads(self._meta_path(job).read_text())
        except (OSError, ValueError):
            return None

    def dotenv(self, job: str) -> list[Variable]:
        meta = self.metadata(job) or {}
        return [Variable(key, value) for key, value in meta.get("dotenv", [])]

    def junit_reports(self, job: str) -> list[Path]:
        directory = self._reports_dir(job) / "junit"
        return sorted(directory.iterdir()) if directory.is_dir() else []

    def clear(self, job: str) -> None:
        """Forget what an earlier run of `job` stored."""
        self._meta_path(job).unlink(missing_ok=True)
        for path in (self.job_dir(job), self._reports_dir(job)):
            _remove_tree(path)

    # -- upload ---------------------------------------------------------------------------
    def upload(
        self,
        job: str,
        spec: ArtifactsSpec,
        project_dir: Path,
        untracked: Callable[[], list[str]],
        expand: Callable[[str], str],
        log: BuildLog,
        commit: str = "",
    ) -> int:
        """Store the job's artifacts and reports; returns the number of files stored."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{job_slug(job)}-", dir=self.root))
        try:
            files = 0
            if spec.paths or spec.untracked:
                log.notice("Uploading artifacts...")
                entries = fileset.select(
                    project_dir,
                    [expand(p) for p in spec.paths],
                    [expand(p) for p in spec.exclude],
                    untracked if spec.untracked else None,
                    log,
                )
                files = fileset.copy_entries(project_dir, staging / "files", entries)
                log.line(f"Stored {files} files in {self.job_dir(job)}")
            dotenv, junit = self._collect_reports(spec.reports, project_dir, staging, expand, log)
            meta = {
                "job": job,
                "name": expand(spec.name) if spec.name else job_slug(job),
                "when": spec.when,
                "files": files,
                "dotenv": dotenv,
                "junit": junit,
                "stored_at": time.time(),
                "commit": commit,
            }
            self._publish(job, staging, meta)
            return files
        finally:
            _remove_tree(staging)

    def import_archive(self, job: str, archive: BinaryIO, *, origin: str, commit: str) -> int:
        """Store a GitLab artifacts archive (zip) as `job`'s artifacts; returns the number of
        files. Only regular files and directories are taken, and only inside the archive's
        root: an entry with `..`, an absolute path or a link is left out."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{job_slug(job)}-", dir=self.root))
        try:
            files = _extract_zip(archive, staging / "files")
            meta = {
                "job": job,
                "name": job_slug(job),
                "when": "on_success",
                "files": files,
                "dotenv": [],
                "junit": [],
                "stored_at": time.time(),
                "commit": commit,
                "origin": origin,
            }
            self._publish(job, staging, meta)
            return files
        finally:
            _remove_tree(staging)

    def _collect_reports(
        self,
        reports: Sequence[tuple[str, Sequence[str]]],
        project_dir: Path,
        staging: Path,
        expand: Callable[[str], str],
        log: BuildLog,
    ) -> tuple[list[list[str]], list[str]]:
        dotenv: list[list[str]] = []
        junit: list[str] = []
        for kind, patterns in reports:
            if kind not in ("dotenv", "junit"):
                log.warning(f"artifacts:reports:{kind} is kept by GitLab only; ignored locally")
                continue
            log.notice(f"Uploading artifacts as {kind!r} report...")
            for pattern in patterns:
                matches = [
                    rel
                    for rel in globs.find_paths(project_dir, expand(pattern))
                    if (project_dir / rel).is_file()
                ]
                if not matches:
                    log.warning(f"{pattern}: no matching files")
                    continue
                log.line(f"{pattern}: found {len(matches)} matching artifact files")
                for rel in matches:
                    if kind == "dotenv":
                        data = fileset.read_job_file(project_dir, rel)
                        if data is None:
                            log.warning(f"{rel}: not a regular file of the job, ignored")
                            continue
                        pairs, problems = parse_dotenv(data.decode(errors="replace"))
                        for problem in problems:
                            log.warning(f"{rel}: {problem}")
                        dotenv.extend([k, v] for k, v in pairs)
                    else:
                        target = staging / "reports" / "junit" / f"{len(junit):03d}-"
                        target = target.with_name(target.name + rel.replace("/", "_"))
                        target.parent.mkdir(parents=True, exist_ok=True)
                        if not fileset.copy_job_file(project_dir, rel, target):
                            log.warning(f"{rel}: not a regular file of the job, ignored")
                            continue
                        junit.append(target.name)
        return dotenv, junit

    def _publish(self, job: str, staging: Path, meta: dict) -> None:
        """Swap the staged set in for the old one (renames, so readers never see a mix)."""
        self.clear(job)
        if (staging / "files").exists():
            os.replace(staging / "files", self.job_dir(job))
        if (staging / "reports").exists():
            os.replace(staging / "reports", self._reports_dir(job))
        tmp = staging / "meta.json"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self._meta_path(job))

    # -- download -------------------------------------------------------------------------
    def download(self, job: str, project_dir: Path) -> int | None:
        """Copy `job`'s artifacts into a project dir; None if it stored none."""
        source = self.job_dir(job)
        if not source.is_dir():
            return None
        return fileset.copy_tree(source, project_dir)


def _extract_zip(archive: BinaryIO, target: Path) -> int:
    target.mkdir(parents=True)
    count = 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            for entry in bundle.infolist():
                mode = entry.external_attr >> 16
                path = PurePosixPath(entry.filename)
                if path.is_absolute() or ".." in path.parts or not path.parts:
                    continue
                kind = stat.S_IFMT(mode)  # 0: the archiver wrote permissions only
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                    continue  # links, devices, fifos: never followed, never made
                destination = target.joinpath(*path.parts)
                if entry.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(entry) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                if mode & 0o111:
                    destination.chmod(0o755)
                count += 1
    except zipfile.BadZipFile as exc:
        raise OSError(f"the artifacts archive is not a zip file ({exc})") from exc
    return count


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
