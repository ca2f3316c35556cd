"""Artifacts between the build's local store and GitLab.

Before the build: each dependency's archive (`GET /jobs/:id/artifacts` with that job's own
token) is unpacked into the job's `ArtifactStore` under the dependency's name, so the build's
own download_artifacts stage copies it into the project, as for a local run. Archives are
hostile input: an entry that would land outside the store is refused.

After the build: what the build stored (runner/build/artifacts.py's layout) is packed as GitLab
expects it and uploaded: the files as one zip (`artifact_type=archive`, `artifact_format=zip`),
each junit report gzipped (`junit`, `gzip`), the dotenv variables as one gzipped dotenv file
(`dotenv`, `gzip`).
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path

from runner.build.artifacts import ArtifactStore
from runner.build.joblog import BuildLog
from runner.gitlab.errors import GitLabError
from runner.gitlab.runner_api import RunnerAPI
from runner.runnermode.payload import ArtifactUpload, RunnerJob


class ArtifactsError(Exception):
    """An archive could not be downloaded, unpacked or uploaded."""


def download_dependencies(
    api: RunnerAPI, job: RunnerJob, store: ArtifactStore, log: BuildLog
) -> tuple[str, ...]:
    """Unpack every dependency's artifacts into `store`; the names of those that had some."""
    found = []
    for dependency in job.dependencies:
        if dependency.artifacts_filename is None:
            continue  # GitLab names an archive only when the job stored one
        log.notice(f"Downloading artifacts for {dependency.name} ({dependency.id})...")
        try:
            data = api.download_artifacts(dependency.id, dependency.token)
        except GitLabError as exc:
            raise ArtifactsError(str(exc)) from None
        if data is None:
            log.warning(f"{dependency.name}: the server has no artifacts for it")
            continue
        files = unpack_zip(data, store.job_dir(dependency.name))
        log.line(f"Downloaded {len(data)} bytes, {files} files")
        found.append(dependency.name)
    return tuple(found)


def unpack_zip(data: bytes, target: Path) -> int:
    """Extract a zip into `target`, refusing entries outside it; the number of files."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    count = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for entry in archive.infolist():
                destination = (root / entry.filename).resolve()
                if destination != root and root not in destination.parents:
                    raise ArtifactsError(f"artifacts archive: {entry.filename!r} is outside")
                if entry.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(entry) as source, open(destination, "wb") as sink:
                    while chunk := source.read(1024 * 1024):
                        sink.write(chunk)
                mode = (entry.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(destination, mode)
                count += 1
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArtifactsError(f"artifacts archive: {exc}") from None
    return count


def pack_zip(directory: Path) -> bytes:
    """`directory`'s files as a zip, paths relative to it (symlinks kept as links)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for parent, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                path = Path(parent) / name
                rel = path.relative_to(directory).as_posix()
                if path.is_symlink():
                    info = zipfile.ZipInfo(rel)
                    info.external_attr = 0o120777 << 16
                    archive.writestr(info, os.readlink(path))
                else:
                    archive.write(path, rel)
    return buffer.getvalue()


def upload_stored(api: RunnerAPI, job: RunnerJob, store: ArtifactStore, log: BuildLog) -> None:
    """Upload what the build stored for the job (nothing stored: nothing sent)."""
    name = job.spec.name
    meta = store.metadata(name)
    if meta is None:
        return  # artifacts:when did not match, or the job has none
    archive = next((u for u in job.uploads if u.artifact_type == "archive"), None)
    files = store.job_dir(name)
    if archive is not None and files.is_dir():
        data = pack_zip(files)
        _upload(api, job, archive, f"{archive.name or 'artifacts'}.zip", data, log)
    for upload in job.uploads:
        if upload.artifact_type == "junit":
            for report in store.junit_reports(name):
                data = gzip.compress(report.read_bytes())
                _upload(api, job, upload, f"{report.name}.gz", data, log)
        elif upload.artifact_type == "dotenv" and meta.get("dotenv"):
            text = "".join(f"{key}={value}\n" for key, value in meta["dotenv"])
            _upload(api, job, upload, "dotenv.env.gz", gzip.compress(text.encode()), log)


def _upload(
    api: RunnerAPI,
    job: RunnerJob,
    upload: ArtifactUpload,
    filename: str,
    data: bytes,
    log: BuildLog,
) -> None:
    kind = upload.artifact_type
    log.notice(f"Uploading artifacts as {kind!r} to coordinator... ({len(data)} bytes)")
    try:
        api.upload_artifacts(
            job.id,
            job.token,
            filename,
            data,
            artifact_type=upload.artifact_type,
            artifact_format=upload.artifact_format,
            expire_in=upload.expire_in,
        )
    except GitLabError as exc:
        raise ArtifactsError(str(exc)) from None
    log.line("Uploaded: 201 Created")
